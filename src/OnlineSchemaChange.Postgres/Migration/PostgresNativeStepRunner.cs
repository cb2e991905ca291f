using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Cutover;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// Runs a native step on the real table: a catalog change, or a step of a non-blocking form
/// (<see cref="PostgresSafeVariant"/>). A brief step runs in a transaction of its own: lock_timeout bounds the wait for
/// its lock (a timed-out wait names the sessions that held it up), statement_timeout bounds the work once it has it,
/// and a new relfilenode (a rewrite the planner's empty copy did not show) or any error rolls it back, refused. A
/// concurrent one (CREATE INDEX CONCURRENTLY, VALIDATE) runs outside any transaction block, which CONCURRENTLY
/// requires, with no timeout: its lock does not queue the application.
/// </summary>
public sealed class PostgresNativeStepRunner(ConnectionTarget target, TableName table) : INativeStepRunner
{
    /// <summary>What a catalog change may take once its lock is granted; more means the server is doing more than that.</summary>
    private const int WorkMillis = 1000;

    private const string FileNode = "SELECT relfilenode FROM pg_class WHERE oid = $1";

    public async Task RunAsync(NativeStep nativeStep, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(nativeStep);
        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        if (nativeStep.Lock == NativeStepLock.Brief)
        {
            await RunBriefAsync(connection, nativeStep.Sql, Math.Max(1, (int)lockTimeout.TotalMilliseconds), cancellationToken);
            return;
        }

        await ExecuteAsync(connection, "SET lock_timeout = 0; SET statement_timeout = 0", cancellationToken);
        try
        {
            await ExecuteAsync(connection, nativeStep.Sql, cancellationToken);
        }
        catch (PostgresException e)
        {
            throw new OscException(Describe(e), "--native off rebuilds the table online instead.", e);
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
        NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        try
        {
            var catalog = new PostgresCatalog(connection);
            var qualified = new TableName(table.Schema ?? await catalog.ScalarAsync<string>("SELECT current_schema()", cancellationToken), table.Name);
            await PostgresLeftoverSessions.HoldRunLockAsync(connection, new PostgresReplicationNames(connection.Database, qualified), consequence, cancellationToken);
            if (await PostgresInspector.LeftoverTableAsync(catalog, qualified, new ShadowNames(table.Name, PostgresInspector.MaxIdentifierLength), cancellationToken) is { } ours)
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

    private async Task RunBriefAsync(NpgsqlConnection connection, string sql, int lockMs, CancellationToken cancellationToken)
    {
        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, $"SET LOCAL lock_timeout = {lockMs}; SET LOCAL statement_timeout = {lockMs + WorkMillis}", cancellationToken);

        // regclass resolves the name without locking the table.
        var catalog = new PostgresCatalog(connection);
        uint oid = await catalog.ScalarAsync<uint>("SELECT $1::regclass::oid", cancellationToken, PostgresSql.Quote(table));
        uint fileBefore = await catalog.ScalarAsync<uint>(FileNode, cancellationToken, oid);
        var watch = new PostgresLockWatch(PostgresConnections.BuildConnectionString(target), oid);
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
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.QueryCanceled)
            {
                throw new NativeStepRefusedException($"The ALTER of {table} ran {WorkMillis} ms past its lock wait and was rolled back: PostgreSQL was doing more under the lock "
                                                     + "than a catalog change (a scan, such as a primary key over columns not yet NOT NULL).", e);
            }
            catch (PostgresException e)
            {
                // Rolled back with the transaction: something on the real table the copy lacks (a dependent view, say) stands in the way.
                throw new NativeStepRefusedException($"The server refused the ALTER on {table} itself: {Describe(e)}", e);
            }
            finally
            {
                await watching.CancelAsync();
                await blockers;
            }
        }

        if (await catalog.ScalarAsync<uint>(FileNode, cancellationToken, oid) != fileBefore)
        {
            await transaction.RollbackAsync(CancellationToken.None);
            throw new NativeStepRefusedException($"The ALTER rewrote {table}, which it did not do on the planner's empty copy; it was rolled back.");
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>The server's message with its detail, which names the offending key or row.</summary>
    private static string Describe(PostgresException e) => $"{e.MessageText} (SQLSTATE {e.SqlState}){(e.Detail is { Length: > 0 } detail ? ": " + detail : ".")}";

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
