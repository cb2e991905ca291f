using System.Diagnostics;
using OnlineSchemaChange.Core.Cutover;

namespace OnlineSchemaChange.Core.Migration;

/// <summary>One try of a catalog-only ALTER on the real table, by the engine that runs it.</summary>
public interface IInstantAlterAttempt
{
    /// <summary>
    /// Runs the ALTER, waiting at most <paramref name="lockTimeout"/> for the table's lock. Throws
    /// <see cref="LockAttemptException"/> when the lock was not granted in time (the table unchanged; retried), and
    /// <see cref="InstantAlterRefusedException"/> when the server refused the change on the real table (nothing changed).
    /// </summary>
    Task RunAsync(TimeSpan lockTimeout, CancellationToken cancellationToken);
}

/// <summary>
/// The server refused the catalog-only ALTER on the real table with nothing changed (it would rewrite after all, or
/// something on the table that the planner's empty copy lacks stands in the way): an online rebuild may still do it.
/// </summary>
public sealed class InstantAlterRefusedException : OscException
{
    public InstantAlterRefusedException(string message, Exception? inner = null)
        : base(message, "Nothing was changed. Run again with --native off to rebuild the table online.", inner)
    {
    }

    public InstantAlterRefusedException()
    {
    }

    public InstantAlterRefusedException(string message) : this(message, null)
    {
    }
}

/// <summary>How a catalog-only ALTER went: the statement, how long it took (the lock wait included), and how many tries.</summary>
public sealed record InstantAlterResult(string Statement, TimeSpan Elapsed, int Attempts);

/// <summary>
/// An ALTER the server runs as a catalog change only (it rewrites, scans and indexes nothing, as the planner saw on an
/// empty copy) needs no shadow table: run natively it holds the table's lock for milliseconds whatever the table's
/// size. What makes a native ALTER dangerous even then is the wait for that lock: behind a long transaction every
/// later query on the table queues behind the waiting ALTER. So it gets the cut-over's bounds: a lock timeout, and
/// retries with backoff and jitter.
/// </summary>
public static class InstantAlter
{
    public static async Task<InstantAlterResult> RunAsync(string statement, IInstantAlterAttempt attempt, CutoverOptions options, Action<string> report,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(attempt);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(report);
        string? lastFailure = null;
        for (int n = 1; n <= options.Attempts; n++)
        {
            long started = Stopwatch.GetTimestamp();
            try
            {
                await attempt.RunAsync(options.LockTimeout, cancellationToken);
                return new InstantAlterResult(statement, Stopwatch.GetElapsedTime(started), n);
            }
            catch (LockAttemptException e)
            {
                lastFailure = e.Message;
                report($"attempt {n} of {options.Attempts}: {e.Message}");
                if (n < options.Attempts)
                {
                    await Task.Delay(LockRetry.Backoff(n), cancellationToken);
                }
            }
        }

        throw new OscException($"The ALTER did not get the table's lock in {options.Attempts} attempts; last: {lastFailure}",
            "Nothing was changed. End or wait out the long transaction named above, then run again (each attempt waits at most --cut-over-lock-timeout-seconds; --cut-over-attempts sets how many).");
    }
}
