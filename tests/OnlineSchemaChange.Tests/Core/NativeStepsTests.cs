using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Plan;

namespace OnlineSchemaChange.Tests.Core;

public sealed class NativeStepsTests
{
    private static readonly CutoverOptions Options = new() { Attempts = 3, LockTimeout = TimeSpan.FromMilliseconds(5) };

    private static NativeStep Step(string name, NativeStepLock lockKind = NativeStepLock.Brief, bool undoable = false) =>
        new(name, $"the {name} step", name.ToUpperInvariant(), lockKind)
        {
            Undo = undoable ? new NativeStep("undo", $"undo {name}", "UNDO " + name.ToUpperInvariant(), NativeStepLock.Brief) : null,
        };

    [Fact]
    public async Task Runs_every_step_in_order_and_times_each()
    {
        var runner = new ScriptedRunner();

        NativeStepsResult result = await NativeSteps.RunAsync([Step("a", undoable: true), Step("b", NativeStepLock.Concurrent), Step("c")], runner, Options, _ => { }, CancellationToken.None);

        Assert.Equal(["A", "B", "C"], runner.Ran);
        Assert.Equal(["a", "b", "c"], result.Steps.Select(s => s.Name));
        Assert.Equal(3, result.Attempts);
    }

    [Fact]
    public async Task A_failed_step_undoes_what_the_steps_before_it_and_itself_left_last_first_and_says_the_table_is_as_it_was()
    {
        var runner = new ScriptedRunner { Failing = { ["C"] = new OscException("violated by some row", "fix the rows") } };

        var error = await Assert.ThrowsAsync<OscException>(() =>
            NativeSteps.RunAsync([Step("a", undoable: true), Step("b"), Step("c", NativeStepLock.Concurrent, undoable: true)], runner, Options, _ => { }, CancellationToken.None));

        Assert.Equal(["A", "B", "C", "UNDO C", "UNDO A"], runner.Ran);
        Assert.Equal("Step c failed: violated by some row", error.Message);
        Assert.StartsWith("Nothing is left of the steps before it", error.Hint, StringComparison.Ordinal);
        Assert.EndsWith("fix the rows", error.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_brief_step_that_fails_is_rolled_back_whole_so_its_own_undo_is_not_run()
    {
        // Its undo (DROP ... IF EXISTS of the name) would otherwise remove an object of that name that was there before.
        var runner = new ScriptedRunner { Failing = { ["B"] = new OscException("already exists") } };

        await Assert.ThrowsAsync<OscException>(() =>
            NativeSteps.RunAsync([Step("a", undoable: true), Step("b", undoable: true)], runner, Options, _ => { }, CancellationToken.None));

        Assert.Equal(["A", "B", "UNDO A"], runner.Ran);
    }

    [Fact]
    public async Task An_undo_that_fails_is_named_with_its_statement()
    {
        var runner = new ScriptedRunner { Failing = { ["B"] = new OscException("no"), ["UNDO A"] = new OscException("cannot") } };

        var error = await Assert.ThrowsAsync<OscException>(() =>
            NativeSteps.RunAsync([Step("a", undoable: true), Step("b", NativeStepLock.Concurrent)], runner, Options, _ => { }, CancellationToken.None));

        Assert.Equal("Left behind, which osc could not remove: run UNDO A;", error.Hint);
    }

    [Fact]
    public async Task A_brief_step_whose_lock_is_not_granted_is_retried_but_a_concurrent_one_is_not()
    {
        var runner = new ScriptedRunner { LockFailures = { ["A"] = 2, ["B"] = 1 } };

        var error = await Assert.ThrowsAsync<OscException>(() =>
            NativeSteps.RunAsync([Step("a"), Step("b", NativeStepLock.Concurrent)], runner, Options, _ => { }, CancellationToken.None));

        Assert.Equal(["A", "A", "A", "B"], runner.Ran);
        Assert.Equal("Step b failed: busy B", error.Message);
    }

    [Fact]
    public async Task Stopped_midway_it_undoes_and_reports_the_cancellation()
    {
        using var stop = new CancellationTokenSource();
        var runner = new ScriptedRunner { OnRun = sql => { if (sql == "B") { stop.Cancel(); } } };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            NativeSteps.RunAsync([Step("a", undoable: true), Step("b", NativeStepLock.Concurrent), Step("c")], runner, Options, _ => { }, stop.Token));

        Assert.Equal(["A", "B", "UNDO A"], runner.Ran);
    }

    private sealed class ScriptedRunner : INativeStepRunner
    {
        public List<string> Ran { get; } = [];

        public Dictionary<string, Exception> Failing { get; } = [];

        public Dictionary<string, int> LockFailures { get; } = [];

        public Action<string>? OnRun { get; init; }

        public Task RunAsync(NativeStep nativeStep, TimeSpan lockTimeout, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Ran.Add(nativeStep.Sql);
            OnRun?.Invoke(nativeStep.Sql);
            cancellationToken.ThrowIfCancellationRequested();
            if (LockFailures.TryGetValue(nativeStep.Sql, out int left) && left > 0)
            {
                LockFailures[nativeStep.Sql] = left - 1;
                throw new LockAttemptException("busy " + nativeStep.Sql);
            }

            return Failing.TryGetValue(nativeStep.Sql, out Exception? failure) ? throw failure : Task.CompletedTask;
        }
    }
}
