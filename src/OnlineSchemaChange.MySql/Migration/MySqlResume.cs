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
