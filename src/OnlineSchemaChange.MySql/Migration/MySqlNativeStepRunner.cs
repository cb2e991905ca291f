using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Connection;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>
/// Runs a catalog change on the real table, the one native step MySQL/MariaDB has. The planner names
/// ALGORITHM=INSTANT in it, so the server refuses rather than rebuild if the real table cannot take it in place
/// (MySQL's limit on instant column changes, say); lock_wait_timeout bounds the wait for the metadata lock, and so
/// how long the application queues behind it. A timed-out wait names the open transactions older than it, the likely
/// holders of the lock.
/// </summary>
public sealed class MySqlNativeStepRunner(ConnectionTarget target, TableName table) : INativeStepRunner
{
    public async Task RunAsync(NativeStep nativeStep, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(nativeStep);
        await using MySqlConnection connection = await MySqlConnections.OpenAsync(target, cancellationToken);
        int lockSeconds = Math.Max(1, (int)Math.Ceiling(lockTimeout.TotalSeconds));
        await ExecuteAsync(connection, $"SET SESSION lock_wait_timeout = {lockSeconds}", cancellationToken);
        try
        {
            await ExecuteAsync(connection, nativeStep.Sql, cancellationToken);
        }
        catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.LockWaitTimeout or MySqlErrorCode.LockDeadlock)
        {
            string? who = await OldTransactionsAsync(connection, lockSeconds, cancellationToken);
            throw new LockAttemptException($"could not lock {table} within {lockSeconds} s"
                                           + (who is null ? "" : $"; open transactions older than that: {who}"));
        }
        catch (MySqlException e) when (e.SqlState is not null)
        {
            // The server's own refusal, and a failed ALTER changes nothing: ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON)
            // and ER_INNODB_MAX_ROW_VERSION where the real table cannot take it in place, or something the planner's
            // empty copy lacks (CREATE TABLE ... LIKE copies no foreign keys: an index one needs, say).
            throw new NativeStepRefusedException($"The server refused the ALTER on {table} itself: {e.Message} (error {(int)e.ErrorCode}).", e);
        }
    }

    /// <summary>
    /// Takes the table's run lock, which every run of ours holds for its whole life, and refuses while a table of an
    /// unfinished run of ours is there: the ALTER would change the original under a live migration (which then stops)
    /// or under one kept for --resume (which then cannot resume). The returned session holds the lock until disposed,
    /// so no rebuild starts on the table while the native steps run.
    /// </summary>
    /// <param name="consequence">Why the caller must not go on while another run holds the lock, a sentence, or null.</param>
    public static async Task<IAsyncDisposable> HoldRunAsync(ConnectionTarget target, TableName table, string? consequence, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var qualified = new TableName(table.Schema ?? target.Database ?? "", table.Name);
        MySqlConnection connection = await MySqlConnections.OpenAsync(target, cancellationToken);
        try
        {
            await MySqlLeftoverSessions.HoldRunLockAsync(connection, qualified, consequence, cancellationToken);
            if (await MySqlInspector.LeftoverTableAsync(connection, qualified, new ShadowNames(table.Name, MySqlInspector.MaxIdentifierLength), cancellationToken) is { } ours)
            {
                throw LeftoverSessions.UnfinishedRun(qualified.Schema!, ours, table.ToString());
            }

            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static async Task<string?> OldTransactionsAsync(MySqlConnection connection, int seconds, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = new MySqlCommand(
                """
                SELECT GROUP_CONCAT(CONCAT('thread ', p.ID, ' (', p.USER, ', ', IF(p.COMMAND = 'Sleep', 'idle in transaction', p.COMMAND),
                                           ' for ', TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), ' s)', IF(p.INFO IS NULL, '', CONCAT(': ', LEFT(p.INFO, 200)))) SEPARATOR '; ')
                FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
                WHERE p.ID <> CONNECTION_ID() AND t.trx_started <= NOW() - INTERVAL @seconds SECOND
                """, connection);
            command.Parameters.AddWithValue("@seconds", seconds);
            return await command.ExecuteScalarAsync(cancellationToken) as string;
        }
        catch (MySqlException)
        {
            // A courtesy for the error message (it needs the PROCESS privilege to see other users' sessions).
            return null;
        }
    }

    private static async Task ExecuteAsync(MySqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
