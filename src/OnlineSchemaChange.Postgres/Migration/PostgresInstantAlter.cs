using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Cutover;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// One try of a catalog-only ALTER on the real table, in a transaction of its own: lock_timeout bounds the wait for
/// the ACCESS EXCLUSIVE lock (and so how long the application queues behind it), statement_timeout bounds the rest,
/// and a table rewritten after all (a new relfilenode) is rolled back rather than committed. A timed-out wait names
/// the sessions that held it up.
/// </summary>
public sealed class PostgresInstantAlter(ConnectionTarget target, TableName table, string statement) : IInstantAlterAttempt
{
    /// <summary>What a catalog change may take once its lock is granted; more means the server is doing more than that.</summary>
    private const int WorkMillis = 1000;

    public async Task RunAsync(TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        string connectionString = PostgresConnections.BuildConnectionString(target);
        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        int lockMs = Math.Max(1, (int)lockTimeout.TotalMilliseconds);
        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, $"SET LOCAL lock_timeout = {lockMs}; SET LOCAL statement_timeout = {lockMs + WorkMillis}", cancellationToken);

        // regclass resolves the name without locking the table.
        uint oid = await ScalarAsync<uint>(connection, "SELECT $1::regclass::oid", PostgresSql.Quote(table), cancellationToken);
        const string FileNode = "SELECT relfilenode FROM pg_class WHERE oid = $1";
        uint fileBefore = await ScalarAsync<uint>(connection, FileNode, oid, cancellationToken);

        var watch = new PostgresLockWatch(connectionString, oid);
        using (var watching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            Task<string?> blockers = watch.WatchBlockersAsync(connection.ProcessID, lockMs, watching.Token);
            try
            {
                await ExecuteAsync(connection, statement, cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.DeadlockDetected)
            {
                await watching.CancelAsync();
                string? who = await blockers ?? await watch.HoldersAsync(connection.ProcessID, cancellationToken);
                throw new LockAttemptException((e.SqlState == PostgresErrorCodes.DeadlockDetected ? $"deadlocked while locking {table}" : $"could not lock {table} within {lockMs} ms")
                                               + (who is null ? "" : $"; blocked by {who}"));
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.QueryCanceled)
            {
                throw new InstantAlterRefusedException($"The ALTER of {table} took longer than a catalog change does ({WorkMillis} ms past its lock wait) and was cancelled: "
                                                       + "the server did more on the table than on the planner's empty copy.", e);
            }
            catch (PostgresException e)
            {
                // Rolled back with the transaction: something on the real table the copy lacks (a dependent view, say) stands in the way.
                throw new InstantAlterRefusedException($"The server refused the ALTER on {table} itself: {e.MessageText} (SQLSTATE {e.SqlState}).", e);
            }
            finally
            {
                await watching.CancelAsync();
                await blockers;
            }
        }

        if (await ScalarAsync<uint>(connection, FileNode, oid, cancellationToken) != fileBefore)
        {
            await transaction.RollbackAsync(CancellationToken.None);
            throw new InstantAlterRefusedException($"The ALTER rewrote {table}, which it did not do on the planner's empty copy; it was rolled back.");
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// Refuses while a table of an unfinished run of ours is there: the ALTER would change the original under a live
    /// migration (which then stops) or under one kept for --resume (which then cannot resume).
    /// </summary>
    public static async Task RefuseUnfinishedRunAsync(ConnectionTarget target, TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var names = new ShadowNames(table.Name, 63);
        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        await using var command = new NpgsqlCommand(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            + "WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass) AND c.relname = ANY($2) LIMIT 1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = PostgresSql.Quote(table) });
        command.Parameters.Add(new NpgsqlParameter { Value = names.Created.ToArray() });
        if (await command.ExecuteScalarAsync(cancellationToken) is string ours)
        {
            throw new OscException($"{ours} exists: a migration of {table.Name} is running or did not finish.",
                $"Let it finish, resume it with --resume, or remove it with `osc cleanup <connection> --table {table}`; then run this ALTER.");
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, object arg, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(arg is uint oid ? new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid } : new NpgsqlParameter { Value = arg });
        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
