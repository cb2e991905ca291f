using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Checkpoint;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Cutover;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// What `osc cleanup` did with our tables: those it dropped, those it left for the operator (the swapped-out
/// original), and notes: materialized views that still read the original, with the statements that move them.
/// </summary>
public sealed record PostgresCleanupReport(IReadOnlyList<string> Dropped, IReadOnlyList<string> Kept)
{
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>
/// Finds and removes the tables a migration of one table leaves behind: the shadow and the bookkeeping table of an
/// interrupted run, and the original as it was before a finished swap (&lt;t&gt;_osc_old), which holds the old data
/// and is dropped only when asked. Also the temporary materialized views of a rebuild interrupted after the swap
/// (<see cref="ShadowNames.RebuiltView"/>, marked by their comment: nothing unmarked is touched), and, read from the
/// bookkeeping table before it goes, the views that still read the original, reported with the statements that move
/// them (`--resume` instead rebuilds them online). Replication slots and publications are the stream's and are
/// cleaned up there.
/// </summary>
public sealed class PostgresCleanup(NpgsqlConnection connection)
{
    /// <summary>
    /// `osc cleanup` on PostgreSQL: refused while a run is live; then the statements a killed run left on the shadow,
    /// the replication slot (it holds WAL on the server until dropped), the publication, and our tables.
    /// </summary>
    public static async Task<CleanupReport> RunAsync(ConnectionTarget target, TableName table, bool dropOld, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(table);
        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        string schema = table.Schema ?? await new PostgresCatalog(connection).ScalarAsync<string>("SELECT current_schema()", cancellationToken);
        var original = new TableName(schema, table.Name);
        var stream = new PostgresReplicationNames(connection.Database, original);
        await PostgresLeftoverSessions.HoldRunLockAsync(connection, stream, "Cleaning up would remove the slot and shadow it is using.", cancellationToken);

        // A killed run's statement can still be waiting on a lock in the shadow, and would hold up its DROP.
        var shadow = original with { Name = new ShadowNames(table.Name, PostgresInspector.MaxIdentifierLength).Shadow };
        IReadOnlyList<string> ended = await PostgresLeftoverSessions.EndAsync(connection, shadow, cancellationToken);
        IReadOnlyList<string> dropped = await PostgresReplicationSlot.DropAsync(PostgresConnections.BuildConnectionString(target), stream, cancellationToken);
        PostgresCleanupReport tables = await new PostgresCleanup(connection).RunAsync(table, dropOld, cancellationToken);
        return new CleanupReport([.. dropped, .. tables.Dropped], tables.Kept) { Notes = [.. ended, .. tables.Notes] };
    }

    /// <summary>Our tables for <paramref name="table"/> that exist now, schema-qualified.</summary>
    public async Task<IReadOnlyList<TableName>> ListAsync(TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var catalog = new PostgresCatalog(connection);
        string schema = table.Schema ?? await catalog.ScalarAsync<string>("SELECT current_schema()", cancellationToken);
        var names = new ShadowNames(table.Name, PostgresInspector.MaxIdentifierLength);
        var found = new List<TableName>();
        foreach (string name in names.Created.Append(names.Old))
        {
            var candidate = new TableName(schema, name);
            if (await catalog.RelationAsync(candidate, cancellationToken) is { Kind: 'r' })
            {
                found.Add(candidate);
            }
        }

        return found;
    }

    public async Task<PostgresCleanupReport> RunAsync(TableName table, bool dropOldTable, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var names = new ShadowNames(table.Name, PostgresInspector.MaxIdentifierLength);
        var catalog = new PostgresCatalog(connection);
        await catalog.ExecuteAsync("SET lock_timeout = '10s'", cancellationToken);
        var dropped = new List<string>();
        var kept = new List<string>();
        string schema = table.Schema ?? await catalog.ScalarAsync<string>("SELECT current_schema()", cancellationToken);
        var qualified = new TableName(schema, table.Name);
        foreach (string view in await PostgresMaterializedViews.DropTemporaryAsync(connection, qualified, names, cancellationToken))
        {
            dropped.Add($"{view} (the unfinished rebuild of a materialized view)");
        }

        // Before the bookkeeping table goes: it records the views a run stopped after the swap had still to rebuild.
        IReadOnlyList<string> notes = await AfterSwapNotesAsync(qualified, names, cancellationToken);
        foreach (TableName leftover in await ListAsync(table, cancellationToken))
        {
            if (leftover.Name == names.Old && !dropOldTable)
            {
                kept.Add(leftover.ToString());
                continue;
            }

            try
            {
                await catalog.ExecuteAsync($"DROP TABLE {PostgresSql.Quote(leftover)}", cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DependentObjectsStillExist)
            {
                throw new OscException($"{leftover} cannot be dropped: {e.MessageText}. {e.Detail}",
                    string.Join(" ", [$"Point those objects at {table.Name} (or drop them), then run cleanup again.", .. notes]), e);
            }

            dropped.Add(leftover.ToString());
        }

        return new PostgresCleanupReport(dropped, kept) { Notes = notes };
    }

    /// <summary>
    /// One note per foreign key the swap added NOT VALID and a stopped run did not validate, with the statement, and per
    /// materialized view that still reads &lt;t&gt;_osc_old: with the statements that move it when the swap recorded
    /// its definition (the definition now printed by the catalog names the old table), else by name.
    /// </summary>
    private async Task<IReadOnlyList<string>> AfterSwapNotesAsync(TableName table, ShadowNames names, CancellationToken cancellationToken)
    {
        TableName log = table with { Name = names.Log };
        TableName old = table with { Name = names.Old };
        var notes = new List<string>();
        var named = new HashSet<string>(StringComparer.Ordinal);
        if (await ReadAfterSwapAsync(log, cancellationToken) is { } record)
        {
            foreach (PostgresAfterSwap.ForeignKey key in await record.NotValidAsync(connection, cancellationToken))
            {
                notes.Add($"The foreign key {key.Name} on {key.Table} is still NOT VALID: the run stopped before validating it (it is enforced for new rows); run: {key.ValidateStatement}");
            }

            foreach (PostgresMaterializedViews.View view in await PostgresMaterializedViews.PendingAsync(connection, record.MaterializedViews, cancellationToken))
            {
                named.Add(view.Name);
                notes.Add($"The materialized view {view.Name} still reads {old}" + (view.Dependents is null ? "" : $" ({view.Dependents} depend on it: drop them first and recreate them after)")
                          + $". To move it onto {table}, run: {PostgresMaterializedViews.RecreateStatements(view)}");
            }
        }

        await using var command = new NpgsqlCommand(
            """
            SELECT DISTINCT format('%I.%I', n.nspname, v.relname)
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = to_regclass($1) AND v.relkind = 'm'
            ORDER BY 1
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = PostgresSql.Quote(old) });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (!named.Contains(reader.GetString(0)))
            {
                notes.Add($"The materialized view {reader.GetString(0)} still reads {old}: recreate it on {table} before dropping {old}.");
            }
        }

        return notes;
    }

    private async Task<PostgresAfterSwap?> ReadAfterSwapAsync(TableName log, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT value FROM {PostgresSql.Quote(log)} WHERE id = {PostgresCheckpointStore.AfterSwapId}", connection);
        try
        {
            return await command.ExecuteScalarAsync(cancellationToken) is string json ? PostgresAfterSwap.Parse(json, log) : null;
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.UndefinedColumn)
        {
            return null;
        }
    }
}
