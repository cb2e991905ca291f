using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Plan;

namespace OnlineSchemaChange.Tests.Core;

/// <summary>A brief native step (a catalog change is one) under the swap's lock discipline: retried while its lock is not granted.</summary>
public sealed class NativeStepRetryTests
{
    private static NativeStep[] Alter(string sql) => [new NativeStep("alter", "the change", sql, NativeStepLock.Brief)];

    [Fact]
    public async Task A_lock_not_granted_is_retried_and_the_result_counts_the_attempts()
    {
        var attempt = new ScriptedAttempt(failures: 2);
        var reports = new List<string>();

        NativeStepsResult result = await NativeSteps.RunAsync(Alter("ALTER TABLE t ADD c INT"), attempt, new CutoverOptions { Attempts = 5 }, reports.Add, CancellationToken.None);

        Assert.Equal(3, result.Attempts);
        Assert.Equal(3, attempt.Calls);
        Assert.All(attempt.Statements, sql => Assert.Equal("ALTER TABLE t ADD c INT", sql));
        Assert.Equal(["alter: ALTER TABLE t ADD c INT", "attempt 1 of 5: busy 1", "attempt 2 of 5: busy 2"], reports);
    }

    [Fact]
    public async Task After_the_last_attempt_it_gives_up_with_the_last_reason_and_waits_no_more()
    {
        var attempt = new ScriptedAttempt(failures: 10);

        var error = await Assert.ThrowsAsync<OscException>(() =>
            NativeSteps.RunAsync(Alter("ALTER"), attempt, new CutoverOptions { Attempts = 2, LockTimeout = TimeSpan.FromMilliseconds(7) }, _ => { }, CancellationToken.None));

        Assert.Equal(2, attempt.Calls);
        Assert.Contains("in 2 attempts; last: busy 2", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", error.Hint, StringComparison.Ordinal);
        Assert.All(attempt.Timeouts, t => Assert.Equal(TimeSpan.FromMilliseconds(7), t));
    }

    [Fact]
    public async Task Any_other_failure_is_not_retried()
    {
        var attempt = new ScriptedAttempt(failures: 0) { Refusal = new OscException("rewrote the table") };

        await Assert.ThrowsAsync<OscException>(() => NativeSteps.RunAsync(Alter("ALTER"), attempt, new CutoverOptions(), _ => { }, CancellationToken.None));

        Assert.Equal(1, attempt.Calls);
    }

    [Fact]
    public async Task A_refusal_with_nothing_left_behind_stays_a_refusal_so_the_rebuild_can_take_over()
    {
        var attempt = new ScriptedAttempt(failures: 0) { Refusal = new NativeStepRefusedException("the server refused it") };

        var error = await Assert.ThrowsAsync<NativeStepRefusedException>(() => NativeSteps.RunAsync(Alter("ALTER"), attempt, new CutoverOptions(), _ => { }, CancellationToken.None));

        Assert.Equal("Step alter failed: the server refused it", error.Message);
        Assert.Equal(1, attempt.Calls);
    }

    [Theory]
    [InlineData(1, 100, 200)]
    [InlineData(3, 400, 800)]
    [InlineData(6, 2500, 5000)]
    [InlineData(40, 2500, 5000)]
    public void The_backoff_doubles_up_to_five_seconds_drawn_from_the_upper_half(int attempt, int least, int most)
    {
        var drawn = Enumerable.Range(0, 200).Select(_ => LockRetry.Backoff(attempt).TotalMilliseconds).ToList();

        Assert.All(drawn, ms => Assert.InRange(ms, least, most));
        Assert.True(drawn.Distinct().Count() > 1, "jittered");
    }

    private sealed class ScriptedAttempt(int failures) : INativeStepRunner
    {
        public int Calls { get; private set; }

        public List<TimeSpan> Timeouts { get; } = [];

        public List<string> Statements { get; } = [];

        public Exception? Refusal { get; init; }

        public Task RunAsync(NativeStep nativeStep, TimeSpan lockTimeout, CancellationToken cancellationToken)
        {
            Calls++;
            Timeouts.Add(lockTimeout);
            Statements.Add(nativeStep.Sql);
            if (Refusal is not null)
            {
                throw Refusal;
            }

            return Calls <= failures ? throw new LockAttemptException($"busy {Calls}") : Task.CompletedTask;
        }
    }
}
