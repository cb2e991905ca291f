using MySqlConnector;

namespace OnlineSchemaChange.MySql.Schema;

/// <summary>
/// Retries an idempotent unit of work (a copy chunk, an applier batch) when InnoDB chose it as a deadlock victim or
/// it waited too long for a row lock: the copy and the replay contend for the same rows by design, and the loser
/// simply runs again. Anything else, or too many tries, is passed on.
/// </summary>
public static class MySqlRetry
{
    public static async Task<T> RunAsync<T>(Func<Task<T>> work, CancellationToken cancellationToken, int attempts = 30)
    {
        ArgumentNullException.ThrowIfNull(work);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await work();
            }
            catch (MySqlException e) when (attempt < attempts && e.ErrorCode is MySqlErrorCode.LockDeadlock or MySqlErrorCode.LockWaitTimeout)
            {
                // Exponential backoff with jitter, capped at a second: the other side gets room to finish.
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 10 << Math.Min(attempt, 7)) + Random.Shared.Next(50)), cancellationToken);
            }
        }
    }
}
