using MySqlConnector;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Plan;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>
/// Removes every leftover of ours for one table: the shadow, the bookkeeping table, a killed cut-over's sentry and
/// the planner's copy, after ending the statements a killed run left on the shadow. It refuses while a run is live.
/// The original as it was before a finished swap (_osc_old) holds the old data, so it is reported and dropped only
/// when asked.
/// </summary>
public sealed class MySqlCleanup(ConnectionTarget target)
{
    public async Task<CleanupReport> RunAsync(TableName table, bool dropOldTable, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        string schema = table.Schema ?? target.Database ?? throw new Core.OscException(
            $"No database given for table {table.Name}.", "Name it in the URI (mysql://host/db), with --database, or as --table db.table.");
        await using MySqlConnection connection = await MySqlConnections.OpenAsync(target, cancellationToken);
        var catalog = new MySqlCatalog(connection);
        await catalog.ExecuteAsync("SET SESSION lock_wait_timeout = 10", cancellationToken);
        var names = new ShadowNames(table.Name, MySqlInspector.MaxIdentifierLength);
        var dropped = new List<string>();
        var kept = new List<string>();
        var notes = new List<string>();
        var original = new TableName(schema, table.Name);
        await MySqlLeftoverSessions.HoldRunLockAsync(connection, original, "Cleaning up would remove the shadow it is writing.", cancellationToken);

        // A killed run's statement can still be waiting on a lock in the shadow, and would hold up its DROP.
        notes.AddRange(await MySqlLeftoverSessions.EndAsync(connection, original with { Name = names.Shadow }, cancellationToken));

        // Before the bookkeeping table goes: it records the keys a swap killed at the wrong moment took from the table.
        if (await MySqlForeignKeys.RestoreIfLostAsync(connection, original, new TableName(schema, names.Log), cancellationToken) is { } restored)
        {
            notes.Add(restored);
        }
        foreach (string name in names.Created.Append(MySqlAlterPlanner.PlanCopyName(table.Name)).Append(names.Old))
        {
            var candidate = new TableName(schema, name);
            if (await catalog.TableSizeAsync(candidate, cancellationToken) is null)
            {
                continue;
            }

            if (name == names.Old && !dropOldTable && !await IsSentryAsync(catalog, candidate, cancellationToken))
            {
                kept.Add(candidate.ToString());
                continue;
            }

            if (name == names.Old)
            {
                // The server would refuse too, less clearly: a referencing table's key must be moved to the new table first.
                await MySqlForeignKeys.EnsureUnreferencedAsync(connection, candidate, cancellationToken);
            }

            try
            {
                await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(candidate)}", cancellationToken);
            }
            catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.LockWaitTimeout)
            {
                throw new Core.OscException(
                    $"Dropping {candidate} waited 10 s for its metadata lock: another session is using it" + (dropped.Count > 0 ? $" (already dropped: {string.Join(", ", dropped)})." : "."),
                    $"Find the session in SHOW PROCESSLIST (State: Waiting for table metadata lock, and the one before it on {candidate.Name}), end it or let it finish, then run osc cleanup again.", e);
            }

            dropped.Add(candidate.ToString());
        }

        return new CleanupReport(dropped, kept) { Notes = notes };
    }

    // A cut-over killed mid-way leaves its sentry under the old table's name: an empty table with one marker column.
    private static async Task<bool> IsSentryAsync(MySqlCatalog catalog, TableName table, CancellationToken cancellationToken)
    {
        var columns = await catalog.ColumnsAsync(table, cancellationToken);
        return columns.Count == 1 && columns[0].Name == Cutover.MySqlCutover.SentryColumn;
    }
}
