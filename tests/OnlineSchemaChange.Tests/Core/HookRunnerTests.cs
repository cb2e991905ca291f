using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Hooks;

namespace OnlineSchemaChange.Tests.Core;

/// <summary>Real programs in a temporary directory, run by the hook runner.</summary>
public sealed class HookRunnerTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("osc-hooks-").FullName;
    private readonly string log;

    public HookRunnerTests() => log = Path.Combine(directory, "log");

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public async Task Runs_the_event_s_executables_in_name_order_with_the_context_and_forwards_their_output()
    {
        Hook("osc-on-success-2", $"echo \"second $OSC_EVENT $OSC_TABLE $OSC_ROWS_COPIED\" >> {log}; echo two");
        Hook("osc-on-success-1", $"echo \"first $OSC_EVENT $OSC_TABLE\" >> {log}; echo one; echo oops >&2");
        Hook("osc-on-failure", $"echo failure >> {log}");
        File.WriteAllText(Path.Combine(directory, "osc-on-success-3"), "#!/bin/sh\necho not executable >> " + log);
        using var output = new StringWriter();
        var runner = new HookRunner(directory, new Dictionary<string, string> { ["OSC_TABLE"] = "orders" }, output);

        IReadOnlyList<string> failures = await runner.RunReportingAsync(HookEvents.Success, new Dictionary<string, string> { ["OSC_ROWS_COPIED"] = "42" }, CancellationToken.None);

        Assert.Empty(failures);
        Assert.Equal(["first success orders", "second success orders 42"], File.ReadAllLines(log));
        string forwarded = output.ToString();
        Assert.Contains("hook osc-on-success-1: one", forwarded, StringComparison.Ordinal);
        Assert.Contains("hook osc-on-success-1: oops", forwarded, StringComparison.Ordinal);
        Assert.Contains("hook osc-on-success-2: two", forwarded, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_hook_fails_its_event_by_name_and_the_ones_after_it_do_not_run()
    {
        Hook("osc-on-before-cut-over-a", "exit 3");
        Hook("osc-on-before-cut-over-b", $"echo ran >> {log}");
        var runner = new HookRunner(directory, new Dictionary<string, string>(), TextWriter.Null);

        OscException e = await Assert.ThrowsAsync<OscException>(() => runner.RunAsync(HookEvents.BeforeCutover, null, CancellationToken.None));

        Assert.Contains("The before-cut-over hook osc-on-before-cut-over-a exited with code 3.", e.Message, StringComparison.Ordinal);
        Assert.Contains("not swapped", e.Hint, StringComparison.Ordinal);
        Assert.False(File.Exists(log));
    }

    [Fact]
    public async Task Reporting_events_list_every_failing_hook_and_run_them_all()
    {
        Hook("osc-on-failure-a", "exit 1");
        Hook("osc-on-failure-b", $"echo ran >> {log}; exit 2");
        var runner = new HookRunner(directory, new Dictionary<string, string>(), TextWriter.Null);

        IReadOnlyList<string> failures = await runner.RunReportingAsync(HookEvents.Failure, null, CancellationToken.None);

        Assert.Equal(2, failures.Count);
        Assert.Equal(["ran"], File.ReadAllLines(log));
    }

    [Fact]
    public void A_missing_directory_is_an_error_that_says_so()
    {
        var runner = new HookRunner(Path.Combine(directory, "nope"), new Dictionary<string, string>(), TextWriter.Null);
        OscException e = Assert.Throws<OscException>(() => runner.HooksOf(HookEvents.Startup));
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancelling_ends_a_hook_that_hangs()
    {
        Hook("osc-on-before-cut-over", "sleep 60");
        var runner = new HookRunner(directory, new Dictionary<string, string>(), TextWriter.Null);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var clock = System.Diagnostics.Stopwatch.StartNew();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => runner.RunAsync(HookEvents.BeforeCutover, null, cancel.Token));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
    }

    private void Hook(string name, string body)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }
}
