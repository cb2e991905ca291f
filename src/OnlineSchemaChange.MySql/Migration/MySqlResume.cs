using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Replication;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>
/// Decides whether an interrupted migration can be resumed, and refuses with the reason and the fix when it cannot:
/// nothing to resume, the swap already happened, no checkpoint, a different ALTER or a changed table, or a binlog file
/// the replay must restart from that the server no longer has. It only reads: a refused resume leaves every
/// leftover in place for the operator to resume correctly or remove with `osc cleanup`.
/// </summary>
public sealed class MySqlResume(MySqlConnection connection, TableName original, ShadowNames names, ICheckpointStore store)
{
    private string Cleanup => $"`osc cleanup <connection> --table {original}`";

    /// <summary>Checks the leftovers a resume needs are there: the shadow and the bookkeeping table.</summary>
    public async Task EnsureLeftoversAsync(CancellationToken cancellationToken)
    {
        var catalog = new MySqlCatalog(connection);
        bool shadow = await catalog.TableSizeAsync(original with { Name = names.Shadow }, cancellationToken) is not null;
        bool log = await catalog.TableSizeAsync(original with { Name = names.Log }, cancellationToken) is not null;
        IReadOnlyList<MySqlColumn> old = await catalog.TableSizeAsync(original with { Name = names.Old }, cancellationToken) is null
            ? [] : await catalog.ColumnsAsync(original with { Name = names.Old }, cancellationToken);
        bool realOld = old.Count > 0 && !(old.Count == 1 && old[0].Name == Cutover.MySqlCutover.SentryColumn);
        if (!shadow && log && realOld)
        {
            throw new OscException(
                $"The interrupted migration of {original} had already swapped the tables: {original} has the new definition and the original is {original.Schema}.{names.Old}.",
                $"Nothing is left to resume. Remove the bookkeeping table with {Cleanup} (add --drop-old-table to drop the original too).");
        }

        if (!shadow)
        {
            throw new OscException($"There is no interrupted migration of {original} to resume: {original.Schema}.{names.Shadow} does not exist.",
                log ? $"Remove the leftover {original.Schema}.{names.Log} with {Cleanup}, then run without --resume." : "Run without --resume.");
        }

        if (!log)
        {
            throw new OscException($"{original.Schema}.{names.Shadow} exists but {original.Schema}.{names.Log}, which holds the checkpoint, does not: the shadow cannot be resumed.",
                $"Remove the shadow with {Cleanup}, then run without --resume.");
        }
    }

    /// <summary>The checkpoint to resume from, once it is known to belong to this ALTER on this table and its binlog is still there.</summary>
    public async Task<MigrationCheckpoint> LoadAsync(MigrationDigest migration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(migration);
        MigrationCheckpoint checkpoint = ResumableCheckpoint.Require(await store.LoadAsync(cancellationToken), migration, original, names.Shadow, Cleanup);
        MySqlBinlogPosition position = ResumableCheckpoint.Position(checkpoint, MySqlBinlogPosition.Parse, Cleanup);

        IReadOnlyList<string> logs = await BinaryLogsAsync(cancellationToken);
        if (!logs.Contains(position.File, StringComparer.Ordinal))
        {
            throw new OscException(
                $"The binlog file {position.File} that the interrupted migration must replay from is no longer on the server"
                + (logs.Count > 0 ? $" (the oldest is {logs[0]})" : "") + ": changes made since its checkpoint cannot be recovered.",
                $"Remove its leftovers with {Cleanup} and start again. Keep binlogs longer than a migration may stay interrupted (binlog_expire_logs_seconds, expire_logs_days).");
        }

        return checkpoint;
    }

    /// <summary>
    /// Ends the statements a killed run left writing to the shadow, and waits for their rollback. The server notices a
    /// lost client only when it next writes to it, so a copy chunk or replay batch that was waiting on a row lock when
    /// its process died waits on, then commits rows it read before the kill, in the middle of the resumed run. The
    /// caller holds the run lock, so no live run of ours writes there. Returns a note per statement ended.
    /// </summary>
    public async Task<IReadOnlyList<string>> EndLeftoverStatementsAsync(CancellationToken cancellationToken)
    {
        var leftovers = new List<(long Id, string Statement)>();
        await using (var find = new MySqlCommand(
                         "SELECT ID, LEFT(INFO, 60) FROM information_schema.PROCESSLIST " +
                         "WHERE ID <> CONNECTION_ID() AND DB = @schema AND INFO IS NOT NULL AND LOCATE(@shadow, INFO) > 0", connection))
        {
            find.Parameters.AddWithValue("@schema", original.Schema);
            find.Parameters.AddWithValue("@shadow", MySqlSql.Quote(names.Shadow));
            await using MySqlDataReader reader = await find.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                leftovers.Add((Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), reader.GetString(1)));
            }
        }

        foreach ((long id, string statement) in leftovers)
        {
            try
            {
                await using var kill = new MySqlCommand($"KILL CONNECTION {id.ToString(CultureInfo.InvariantCulture)}", connection);
                await kill.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchThread)
            {
                // It ended by itself in between.
            }
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.KillDenied or MySqlErrorCode.SpecifiedAccessDeniedError)
            {
                throw new OscException(
                    $"Session {id} is still writing to {original.Schema}.{names.Shadow} ({statement}...), most likely left by the interrupted run, and this user may not end it.",
                    $"End it (KILL CONNECTION {id}) as a user with the CONNECTION ADMIN or SUPER privilege, then resume again.");
            }
        }

        if (leftovers.Count == 0)
        {
            return [];
        }

        // A killed session stays listed until its transaction has rolled back.
        string ids = string.Join(", ", leftovers.Select(l => l.Id.ToString(CultureInfo.InvariantCulture)));
        var deadline = DateTime.UtcNow + LeftoverRollbackWait;
        await using var listed = new MySqlCommand($"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({ids})", connection);
        while (Convert.ToInt64(await listed.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) > 0)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new OscException($"The sessions {ids} the interrupted run left writing to {original.Schema}.{names.Shadow} were ended but are still rolling back.",
                    "Wait until they leave SHOW PROCESSLIST, then resume again.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }

        return leftovers.Select(l => $"Ended session {l.Id}, which the interrupted run had left writing to the shadow ({l.Statement}...).").ToList();
    }

    private static readonly TimeSpan LeftoverRollbackWait = TimeSpan.FromMinutes(5);

    private async Task<IReadOnlyList<string>> BinaryLogsAsync(CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand("SHOW BINARY LOGS", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        var files = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            files.Add(reader.GetString(0));
        }

        return files;
    }
}
