using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Tests.Core;

/// <summary>The control socket's commands change what the running migration's throttler and copy read.</summary>
public sealed class ControlCommandsTests
{
    private static readonly OnlineAlterOptions Options = new() { ChunkTime = TimeSpan.FromMilliseconds(500), MaxLag = TimeSpan.FromMilliseconds(1500) };

    private readonly MigrationControls _controls = new(Options);
    private readonly ThresholdSignal _lag = new("replica lag", 1500, _ => ValueTask.FromResult(1000.0), " ms");
    private int _aborted;

    private ControlCommands Commands(string? postponeFlag = null) =>
        new(_controls, () => "state copying", () => _aborted++, postponeFlag);

    /// <summary>A throttler built as the engines build it, with load variables "busy" (at 10) and "idle" (at 0); "nosuch" cannot be measured.</summary>
    private Throttler BuildThrottler() =>
        MigrationSteps.BuildThrottler(Options with { Controls = _controls }, null, [_lag], (spec, option) =>
            spec.Split(',').Select(IThrottleSignal (pair) =>
            {
                string[] parts = pair.Split('=');
                return new ThresholdSignal(parts[0], double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), _ => parts[0] switch
                {
                    "busy" => ValueTask.FromResult(10.0),
                    "idle" => ValueTask.FromResult(0.0),
                    _ => throw new InvalidOperationException("no such variable"),
                });
            }).ToList());

    [Fact]
    public async Task Throttle_pauses_the_copy_until_no_throttle()
    {
        await using Throttler throttler = BuildThrottler();
        await throttler.CheckAsync(CancellationToken.None);
        Assert.False(throttler.IsThrottled);

        Assert.StartsWith("ok", await Commands().ExecuteAsync("throttle", CancellationToken.None), StringComparison.Ordinal);
        await throttler.CheckAsync(CancellationToken.None);
        Assert.Contains("operator", throttler.Reason, StringComparison.Ordinal);

        Assert.StartsWith("ok", await Commands().ExecuteAsync("no-throttle\n", CancellationToken.None), StringComparison.Ordinal);
        await throttler.CheckAsync(CancellationToken.None);
        Assert.False(throttler.IsThrottled);
    }

    [Fact]
    public async Task A_lower_lag_limit_pauses_the_copy_at_the_next_check()
    {
        await using Throttler throttler = BuildThrottler();

        Assert.Equal("ok max-lag-millis=800", await Commands().ExecuteAsync("max-lag-millis=800", CancellationToken.None));
        await throttler.CheckAsync(CancellationToken.None);

        Assert.Equal("replica lag is 1000 ms, above 800 ms", throttler.Reason);
        Assert.Equal("ok 800", await Commands().ExecuteAsync("max-lag-millis", CancellationToken.None));
    }

    [Fact]
    public async Task Max_load_is_replaced_removed_and_refused_when_it_cannot_be_measured()
    {
        await using Throttler throttler = BuildThrottler();

        Assert.Equal("ok max-load=busy=5", await Commands().ExecuteAsync("max-load=busy=5", CancellationToken.None));
        await throttler.CheckAsync(CancellationToken.None);
        Assert.Equal("busy is 10, above 5", throttler.Reason);

        string refused = await Commands().ExecuteAsync("max-load=nosuch=5", CancellationToken.None);
        Assert.StartsWith("error: max-load: nosuch cannot be measured", refused, StringComparison.Ordinal);
        Assert.Equal("busy=5", _controls.MaxLoad);

        Assert.Equal("ok max-load removed", await Commands().ExecuteAsync("max-load=", CancellationToken.None));
        await throttler.CheckAsync(CancellationToken.None);
        Assert.False(throttler.IsThrottled);
        Assert.Null(_controls.MaxLoad);
    }

    [Fact]
    public async Task Critical_load_set_while_running_aborts_the_copy()
    {
        await using Throttler throttler = BuildThrottler();

        Assert.StartsWith("ok", await Commands().ExecuteAsync("critical-load=busy=5", CancellationToken.None), StringComparison.Ordinal);
        await throttler.CheckAsync(CancellationToken.None);

        Assert.Equal("busy is 10, above 5", throttler.AbortReason);
        await Assert.ThrowsAsync<OscException>(() => throttler.WaitUntilOpenAsync(CancellationToken.None));
    }

    [Fact]
    public async Task The_chunk_time_changes_what_the_sizer_aims_at()
    {
        ChunkSizer sizer = (Options with { Controls = _controls }).NewChunkSizer();
        sizer.Record(1000, TimeSpan.FromMilliseconds(500));
        int before = sizer.NextRows;

        Assert.Equal("ok chunk-time-millis=125", await Commands().ExecuteAsync("chunk-time-millis=125", CancellationToken.None));
        sizer.Record(1000, TimeSpan.FromMilliseconds(500));

        Assert.Equal(TimeSpan.FromMilliseconds(125), sizer.Target);
        Assert.True(sizer.NextRows < before, $"{sizer.NextRows} rows after {before}");
    }

    [Fact]
    public async Task Workers_go_from_one_to_as_many_as_the_copy_runs_tasks_for()
    {
        Assert.StartsWith("error: The copy is not running", await Commands().ExecuteAsync("workers=1", CancellationToken.None), StringComparison.Ordinal);
        int tasks = MigrationControls.CopyTasks(3, canGrow: true);
        Func<int> active = _controls.BindCopy(3, tasks);
        Assert.Equal(3, active());

        Assert.Equal("ok workers=1", await Commands().ExecuteAsync("workers=1", CancellationToken.None));
        Assert.Equal(1, active());
        Assert.Equal($"ok workers={tasks}", await Commands().ExecuteAsync($"workers={tasks}", CancellationToken.None));
        Assert.Equal(tasks, active());
        Assert.StartsWith($"error: workers takes 1 to {tasks} on this copy", await Commands().ExecuteAsync($"workers={tasks + 1}", CancellationToken.None), StringComparison.Ordinal);
        Assert.StartsWith($"error: workers takes 1 to {tasks}", await Commands().ExecuteAsync("workers=0", CancellationToken.None), StringComparison.Ordinal);
        Assert.StartsWith("error: workers needs a whole number", await Commands().ExecuteAsync("workers=two", CancellationToken.None), StringComparison.Ordinal);
        Assert.Equal($"ok {tasks}", await Commands().ExecuteAsync("workers", CancellationToken.None));
        Assert.Contains($"workers={tasks} ", _controls.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_copy_that_cannot_run_in_parallel_keeps_one_worker_and_says_where_the_reason_is()
    {
        Assert.Equal(1, MigrationControls.CopyTasks(1, canGrow: false));
        Assert.Equal(MigrationControls.MostWorkers, MigrationControls.CopyTasks(1, canGrow: true));
        Assert.Equal(40, MigrationControls.CopyTasks(40, canGrow: true));
        _controls.BindCopy(1, MigrationControls.CopyTasks(1, canGrow: false));

        string answer = await Commands().ExecuteAsync("workers=2", CancellationToken.None);

        Assert.StartsWith("error: workers takes 1 to 1 on this copy", answer, StringComparison.Ordinal);
        Assert.Contains("one worker only: the run's notes say why", answer, StringComparison.Ordinal);
        Assert.Equal(1, _controls.Workers);
    }

    [Theory]
    [InlineData("chunk-time-millis=0", "error: chunk-time-millis needs a whole number")]
    [InlineData("chunk-time-millis=-5", "error: chunk-time-millis needs a whole number")]
    [InlineData("max-lag-millis=1.5", "error: max-lag-millis needs a whole number")]
    [InlineData("throttle=1", "error: throttle takes no value")]
    [InlineData("drop table t", "error: unknown command 'drop table t'")]
    [InlineData("", "error: empty command")]
    public async Task Bad_commands_get_an_error_and_change_nothing(string line, string expected)
    {
        string answer = await Commands().ExecuteAsync(line, CancellationToken.None);

        Assert.StartsWith(expected, answer, StringComparison.Ordinal);
        Assert.Equal(new MigrationControls(Options).Describe(), _controls.Describe());
        Assert.Equal(0, _aborted);
    }

    [Fact]
    public async Task Status_gives_the_state_and_the_settings_in_force()
    {
        await Commands().ExecuteAsync("postpone-cut-over", CancellationToken.None);

        string status = await Commands().ExecuteAsync("STATUS", CancellationToken.None);

        Assert.Equal(["ok", "state copying", "workers=- chunk-time-millis=500 max-lag-millis=1500 max-load= critical-load= throttled-by-operator=no cut-over-postponed=yes"],
            status.Split('\n'));
    }

    [Fact]
    public async Task Unpostpone_releases_the_swap_and_removes_the_flag_file()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"osc-control-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(flag, "");
        _controls.CutoverPostponed = true;

        string answer = await Commands(flag).ExecuteAsync("unpostpone", CancellationToken.None);

        Assert.Equal($"ok the swap may go; removed {flag}", answer);
        Assert.False(File.Exists(flag));
        Assert.False(_controls.CutoverPostponed);
    }

    [Fact]
    public async Task A_postponed_swap_waits_for_the_operator()
    {
        _controls.CutoverPostponed = true;
        var reports = new List<string>();
        Task waiting = MigrationSteps.PostponeCutoverAsync(null, reports.Add, null, CancellationToken.None, _controls);
        await Task.Delay(1100);
        Assert.False(waiting.IsCompleted);

        await Commands().ExecuteAsync("unpostpone", CancellationToken.None);

        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Contains("postponed by the operator (control socket)", reports);
    }

    [Fact]
    public async Task Abort_calls_the_commands_stop()
    {
        Assert.StartsWith("ok stopping", await Commands().ExecuteAsync("abort", CancellationToken.None), StringComparison.Ordinal);
        Assert.Equal(1, _aborted);
    }
}
