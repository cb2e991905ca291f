using System.Diagnostics;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Plan;

namespace OnlineSchemaChange.Core.Migration;

/// <summary>Runs one native step on the real table, for the engine it belongs to.</summary>
public interface INativeStepRunner
{
    /// <summary>
    /// Runs the step. A <see cref="NativeStepLock.Brief"/> one waits at most <paramref name="lockTimeout"/> for its lock
    /// and throws <see cref="LockAttemptException"/> when it was not granted (nothing done; retried); any other
    /// failure is an <see cref="OscException"/> that names the step and the server's reason.
    /// </summary>
    Task RunAsync(NativeStep nativeStep, TimeSpan lockTimeout, CancellationToken cancellationToken);
}

/// <summary>How a run of native steps went: its time, every lock attempt made, and each step's time.</summary>
public sealed record NativeStepsResult(TimeSpan Elapsed, int Attempts, IReadOnlyList<CutoverStep> Steps);

/// <summary>
/// Runs a non-blocking native form of an ALTER step by step: the brief steps under the swap's lock timeout and
/// retries (<see cref="InstantAlter"/>), the concurrent ones for as long as they take. When a step fails or the run
/// is stopped, what the steps so far left behind is removed again, last first, so the table is as it was; what
/// cannot be removed is named with the statement that removes it.
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
        long started = Stopwatch.GetTimestamp();
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

                // Pushed first: a concurrent index build that fails leaves an INVALID index of its own.
                if (step.Undo is not null)
                {
                    undo.Push(step.Undo);
                }

                long stepStarted = Stopwatch.GetTimestamp();
                attempts += await RunStepAsync(step, runner, options, report, cancellationToken);
                timed.Add(new CutoverStep(step.Phase, Stopwatch.GetElapsedTime(stepStarted)));
            }
        }
        catch (Exception e) when (e is OscException or LockAttemptException or OperationCanceledException)
        {
            IReadOnlyList<string> left = await UndoAsync(undo, runner, options, report);
            if (e is OperationCanceledException)
            {
                throw;
            }

            string hint = left.Count == 0
                ? "Nothing is left of the steps before it: the table is as it was. " + (e as OscException)?.Hint
                : "Left behind, which osc could not remove: run " + string.Join(" then ", left.Select(sql => sql + ";"));
            throw new OscException($"Step {current!.Phase} failed: {e.Message}", hint.Trim(), e);
        }

        return new NativeStepsResult(Stopwatch.GetElapsedTime(started), attempts, timed);
    }

    private static async Task<int> RunStepAsync(NativeStep step, INativeStepRunner runner, CutoverOptions options, Action<string> report, CancellationToken cancellationToken)
    {
        if (step.Lock == NativeStepLock.Concurrent)
        {
            await runner.RunAsync(step, options.LockTimeout, cancellationToken);
            return 1;
        }

        InstantAlterResult done = await InstantAlter.RunAsync(step.Sql, new StepAttempt(runner, step), options, report, cancellationToken);
        return done.Attempts;
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

    private sealed class StepAttempt(INativeStepRunner runner, NativeStep step) : IInstantAlterAttempt
    {
        public Task RunAsync(TimeSpan lockTimeout, CancellationToken cancellationToken) => runner.RunAsync(step, lockTimeout, cancellationToken);
    }
}
