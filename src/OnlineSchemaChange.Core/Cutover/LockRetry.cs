namespace OnlineSchemaChange.Core.Cutover;

/// <summary>
/// One attempt at a table's lock gave up in a way a later attempt may not (the lock was not granted within the
/// timeout, a deadlock, a drain that ran out of time): the caller backs off and tries again.
/// </summary>
public sealed class LockAttemptException(string message) : Exception(message);

/// <summary>How long to wait between attempts at a table's lock.</summary>
public static class LockRetry
{
    /// <summary>
    /// Doubling from 200 ms to a ceiling of 5 s, and drawn from the upper half of that at random: a blocking transaction
    /// gets time to end, and two runs (or a run and an application's own retries) do not collide again in step.
    /// </summary>
    public static TimeSpan Backoff(int attempt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 1);
        int ceiling = (int)Math.Min(5000, 100 * Math.Pow(2, Math.Min(attempt, 6)));
        return TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.Next(ceiling / 2 + 1));
    }
}
