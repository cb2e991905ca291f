using System.Diagnostics;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Plan;

namespace OnlineSchemaChange.Core.Migration;

/// <summary>Runs one native step on the real table, for the engine it belongs to.</summary>
public interface INativeStepRunner
{
    /// <summary>
    /// Runs the step. A <see cref="NativeStepLock.Brief"/> one waits at most <paramref name="lockTimeout"/> for its lock
    /// and throws <see cref="LockAttemptException"/> when it was not granted (nothing done; retried), and
    /// <see cref="NativeStepRefusedException"/> when the server refused it with nothing done; any other failure is an
    /// <see cref="OscException"/> with the server's reason.
    /// </summary>
    Task RunAsync(NativeStep nativeStep, TimeSpan lockTimeout, CancellationToken cancellationToken);
}

/// <summary>
/// The server refused a step on the real table and changed nothing (it would rewrite after all, or something on the
/// table the planner's empty copy lacks stands in the way); with nothing left of the steps before it, an online
/// rebuild may still make the change.
/// </summary>
public sealed class NativeStepRefusedException : OscException
{
    public NativeStepRefusedException(string message, Exception? inner = null)
        : base(message, "Nothing was changed. Run again with --native off to rebuild the table online.", inner)
    {
    }

    public NativeStepRefusedException()
    {
    }

    public NativeStepRefusedException(string message) : this(message, null)
    {
    }
}

/// <summary>How a run of native steps went: every lock attempt made, and each step's time.</summary>
public sealed record NativeStepsResult(int Attempts, IReadOnlyList<CutoverStep> Steps);

/// <summary>
/// Runs an ALTER natively, step by step: a catalog change is one brief step, a non-blocking form several. What makes
/// even a brief lock dangerous is the wait for it: behind a long transaction every later query on the table queues
/// behind the waiting ALTER. So brief steps get the swap's bounds, a lock timeout and retries with backoff and jitter;
/// concurrent ones run for as long as they take. When a step fails or the run is stopped, what the steps so far left
/// behind is removed again, last first, so the table is as it was; what cannot be removed is named with the
/// statement that removes it.
/// </summary>
public static class NativeSteps
{
    /// <summary>How long removing what a failed run left may take, after Ctrl-C too.</summary>
    public static readonly TimeSpan UndoTimeout = TimeSpan.FromMinutes(5);

    public static async Task<NativeStepsResult> RunAsync(IReadOnlyList<NativeStep> steps, INativeStepRunner runner, CutoverOptions options, Action<string> report,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(report);
        var undo = new Stack<NativeStep>();
        var timed = new List<CutoverStep>();
        int attempts = 0;
        NativeStep? current = null;
        try
        {
            foreach (NativeStep step in steps)
            {
                current = step;
                report($"{step.Phase}: {step.Sql}");

                // A concurrent index build that fails leaves an INVALID index of its own: its undo goes first. A brief
                // step that fails is rolled back whole, so its undo only counts once it succeeded (it could otherwise
                // drop an object of the same name that was there before).
                bool concurrent = step.Lock == NativeStepLock.Concurrent;
                if (step.Undo is not null && concurrent)
                {
                    undo.Push(step.Undo);
                }

                long stepStarted = Stopwatch.GetTimestamp();
                attempts += await RunStepAsync(step, runner, options, report, cancellationToken);
                timed.Add(new CutoverStep(step.Phase, Stopwatch.GetElapsedTime(stepStarted)));
                if (step.Undo is not null && !concurrent)
                {
                    undo.Push(step.Undo);
                }
            }
        }
        catch (Exception e) when (e is OscException or LockAttemptException or OperationCanceledException)
        {
            IReadOnlyList<string> left = await UndoAsync(undo, runner, options, report);
            if (e is OperationCanceledException)
            {
                throw;
            }

            string message = $"Step {current!.Phase} failed: {e.Message}";
            if (left.Count == 0 && e is NativeStepRefusedException)
            {
                throw new NativeStepRefusedException(message, e);
            }

            string hint = left.Count == 0
                ? "Nothing is left of the steps before it: the table is as it was. " + (e as OscException)?.Hint
                : "Left behind, which osc could not remove: run " + string.Join(" then ", left.Select(sql => sql + ";"));
            throw new OscException(message, hint.Trim(), e);
        }

        return new NativeStepsResult(attempts, timed);
    }

    /// <summary>Runs one step, a brief one retried while its lock is not granted; returns the attempts it took.</summary>
    private static async Task<int> RunStepAsync(NativeStep step, INativeStepRunner runner, CutoverOptions options, Action<string> report, CancellationToken cancellationToken)
    {
        int attempts = step.Lock == NativeStepLock.Brief ? options.Attempts : 1;
        string? lastFailure = null;
        for (int n = 1; n <= attempts; n++)
        {
            try
            {
                await runner.RunAsync(step, options.LockTimeout, cancellationToken);
                return n;
            }
            catch (LockAttemptException e) when (step.Lock == NativeStepLock.Brief)
            {
                lastFailure = e.Message;
                report($"attempt {n} of {attempts}: {e.Message}");
                if (n < attempts)
                {
                    await Task.Delay(LockRetry.Backoff(n), cancellationToken);
                }
            }
        }

        throw new OscException($"The ALTER did not get the table's lock in {attempts} attempts; last: {lastFailure}",
            "Nothing was changed. End or wait out the long transaction named above, then run again (each attempt waits at most --cut-over-lock-timeout-seconds; --cut-over-attempts sets how many).");
    }

    /// <summary>Removes, last first, what the steps so far left; returns the statements that failed.</summary>
    private static async Task<IReadOnlyList<string>> UndoAsync(Stack<NativeStep> undo, INativeStepRunner runner, CutoverOptions options, Action<string> report)
    {
        var left = new List<string>();
        using var bounded = new CancellationTokenSource(UndoTimeout);
        while (undo.TryPop(out NativeStep? step))
        {
            try
            {
                report($"undo: {step.Sql}");
                await RunStepAsync(step, runner, options, report, bounded.Token);
            }
            catch (Exception e) when (e is OscException or OperationCanceledException)
            {
                left.Add(step.Sql);
            }
        }

        return left;
    }
}
