using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Tests.Core;

/// <summary>The steps both engines' online ALTER share: throttler from the options, copy against the replay, postponing, keeping.</summary>
public sealed class MigrationStepsTests
{
    /// <summary>Keys 1..count; each chunk waits for <see cref="Gate"/>, honouring cancellation.</summary>
    private sealed class GatedKeys(int count) : ICopySource
    {
        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Cancelled;

        public Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken)
        {
            long after = afterKey is null ? 0 : (long)afterKey.Values[0]!;
            return Task.FromResult(after + rows >= count ? null : new RowKey(after + rows));
        }

        public async Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken)
        {
            try
            {
                await Gate.Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref Cancelled);
                throw;
            }

            long lower = range.LowerExclusive is null ? 0 : (long)range.LowerExclusive.Values[0]!;
            long upper = range.UpperInclusive is null ? count : (long)range.UpperInclusive.Values[0]!;
            return upper - lower;
        }
    }

    private sealed class Fixed(string name, string? reason) : IThrottleSignal
    {
        public string Name => name;

        public ValueTask<string?> CheckAsync(CancellationToken cancellationToken) => ValueTask.FromResult(reason);
    }

    [Fact]
    public async Task The_copy_runs_to_its_end_and_reports_while_the_replay_is_healthy()
    {
        var source = new GatedKeys(5_000);
        source.Gate.SetResult();
        var copier = new KeysetCopier(source, new ChunkSizer(TimeSpan.FromMilliseconds(100)), null, 2);
        int reports = 0;

        await MigrationSteps.CopyAsync(copier, null, [], new TaskCompletionSource().Task, () => Interlocked.Increment(ref reports), CancellationToken.None);

        Assert.True(copier.Finished);
        Assert.Equal(5_000, copier.RowsCopied);
        Assert.True(reports >= 1);
    }

    [Fact]
    public async Task A_replay_that_fails_stops_the_copy_and_its_error_is_what_the_copy_step_throws()
    {
        var source = new GatedKeys(5_000);
        var copier = new KeysetCopier(source, new ChunkSizer(TimeSpan.FromMilliseconds(100)), null, 2);
        var failed = new TaskCompletionSource();

        Task copy = MigrationSteps.CopyAsync(copier, null, [], failed.Task, () => { }, CancellationToken.None);
        await Task.Delay(50);
        Assert.False(copy.IsCompleted);
        failed.SetException(new OscException("the replay broke"));

        var thrown = await Assert.ThrowsAsync<OscException>(() => copy.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("the replay broke", thrown.Message);
        Assert.True(source.Cancelled >= 1, "the chunk in progress was not cancelled");
        Assert.False(copier.Finished);
    }

    [Fact]
    public async Task The_throttler_has_the_flag_file_the_replica_lag_and_max_load_signals_and_critical_load_aborts()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"osc-steps-{Guid.NewGuid():N}");
        var asked = new List<(string Spec, string Option)>();
        IReadOnlyList<IThrottleSignal> Load(string spec, string option)
        {
            asked.Add((spec, option));
            return [new Fixed(option, option == "--critical-load" ? null : "load is high")];
        }

        var options = new OnlineAlterOptions { ThrottleFlagFile = flag, MaxLoad = "Threads_running=50", CriticalLoad = "Threads_running=200" };
        double lag = 200;
        var replica = new ThresholdSignal("replica lag", 1500, _ => ValueTask.FromResult(lag), "ms");
        await using (Throttler throttler = MigrationSteps.BuildThrottler(options, null, [replica], Load))
        {
            Assert.Null(throttler.ReplicaLagMillis);
            await throttler.CheckAsync(CancellationToken.None);
            Assert.Equal("load is high", throttler.Reason);
            Assert.Equal(200, throttler.ReplicaLagMillis);
            await File.WriteAllTextAsync(flag, "");
            try
            {
                // The flag file comes first and holds the copy; the replica's lag is still measured, for progress.
                lag = 700;
                await throttler.CheckAsync(CancellationToken.None);
                Assert.Equal($"flag file {flag} exists", throttler.Reason);
                Assert.Equal(700, throttler.ReplicaLagMillis);
            }
            finally
            {
                File.Delete(flag);
            }
        }

        Assert.Equal([("Threads_running=50", "--max-load"), ("Threads_running=200", "--critical-load")], asked);

        var critical = new OnlineAlterOptions { CriticalLoad = "Threads_running=1" };
        await using Throttler aborting = MigrationSteps.BuildThrottler(critical, null, [new ThresholdSignal("replica lag", 1000, _ => ValueTask.FromResult(9000.0))],
            (_, option) => [new Fixed(option, "threads running above 1")]);
        await aborting.CheckAsync(CancellationToken.None);
        Assert.Equal("threads running above 1", aborting.AbortReason);
    }

    [Fact]
    public async Task The_cut_over_waits_while_the_postpone_flag_exists_and_runs_the_meanwhile_step_each_second()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"osc-steps-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(flag, "");
        var states = new List<string>();
        int meanwhile = 0;
        Task waiting = MigrationSteps.PostponeCutoverAsync(flag, states.Add, _ =>
        {
            if (Interlocked.Increment(ref meanwhile) == 2)
            {
                File.Delete(flag);
            }

            return Task.CompletedTask;
        }, CancellationToken.None);

        await waiting.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(2, meanwhile);
        Assert.Equal([$"postponed while {flag} exists", $"postponed while {flag} exists"], states);
        await MigrationSteps.PostponeCutoverAsync(null, states.Add, null, CancellationToken.None);
        Assert.Equal(2, states.Count);
    }

    [Fact]
    public async Task A_run_kept_before_the_swap_says_why_it_stopped_and_what_is_kept()
    {
        IReadOnlyList<string> kept = ["db.t_osc_new", "db.t_osc_log"];

        MigrationKeptException cancelled = await MigrationSteps.KeepBeforeSwapAsync(null, new OperationCanceledException(), true, "db.t", kept, "The slot keeps WAL.");
        Assert.True(cancelled.Cancelled);
        Assert.Equal("Stopped before the swap; db.t is untouched. The slot keeps WAL.", cancelled.Message);
        Assert.Null(cancelled.Hint);
        Assert.Equal(kept, cancelled.KeptTables);
        Assert.False(cancelled.Swapped);

        MigrationKeptException known = await MigrationSteps.KeepBeforeSwapAsync(null, new OscException("The lock timed out.", "Try later."), false, "db.t", kept);
        Assert.False(known.Cancelled);
        Assert.Equal("The lock timed out.", known.Message);
        Assert.Equal("Try later.", known.Hint);

        var bug = new InvalidOperationException("boom");
        MigrationKeptException unexpected = await MigrationSteps.KeepBeforeSwapAsync(null, bug, false, "db.t", kept);
        Assert.Equal("Unexpected failure: boom", unexpected.Message);
        Assert.Contains("InvalidOperationException", unexpected.Hint, StringComparison.Ordinal);
        Assert.Same(bug, unexpected.InnerException);
    }
}
