using Npgsql;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Cutover;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// A statement that takes a lock the application's writes queue behind, for a catalog change: run in a transaction of
/// its own, lock_timeout bounding the wait for the lock (a timed-out wait names the sessions that held it up, as a
/// <see cref="LockAttemptException"/>), statement_timeout bounding the work once it has it, and any error rolling it
/// back. What fails is handed to the caller to name.
/// </summary>
internal static class PostgresBriefStatement
{
    /// <summary>What a catalog change may take once its lock is granted; more means the server is doing more than that.</summary>
    public const int WorkMillis = 1000;

    /// <param name="beforeCommit">Checks the table's relfilenode before and after: throws to roll the statement back.</param>
    /// <param name="describe">Turns the server's error (a timed-out statement included) into the caller's exception.</param>
    public static async Task RunAsync(ConnectionTarget target, TableName table, string sql, TimeSpan lockTimeout, Action<uint, uint>? beforeCommit,
        Func<PostgresException, Exception> describe, CancellationToken cancellationToken)
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
                await ExecuteAsync(connection, sql, cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.DeadlockDetected)
            {
                await watching.CancelAsync();
                string? who = await blockers ?? await watch.HoldersAsync(connection.ProcessID, cancellationToken);
                throw new LockAttemptException((e.SqlState == PostgresErrorCodes.DeadlockDetected ? $"deadlocked while locking {table}" : $"could not lock {table} within {lockMs} ms")
                                               + (who is null ? "" : $"; blocked by {who}"));
            }
            catch (PostgresException e)
            {
                throw describe(e);
            }
            finally
            {
                await watching.CancelAsync();
                await blockers;
            }
        }

        if (beforeCommit is not null)
        {
            uint fileAfter = await ScalarAsync<uint>(connection, FileNode, oid, cancellationToken);
            try
            {
                beforeCommit(fileBefore, fileAfter);
            }
            catch
            {
                await transaction.RollbackAsync(CancellationToken.None);
                throw;
            }
        }

        await transaction.CommitAsync(cancellationToken);
    }

    public static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, object arg, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(arg is uint oid ? new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid } : new NpgsqlParameter { Value = arg });
        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
