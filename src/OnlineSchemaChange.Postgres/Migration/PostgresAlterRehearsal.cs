using Npgsql;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>What a dry run on PostgreSQL established: the checks passed, the shadow the ALTER produces, how rows map onto it, the slot it would stream from.</summary>
public sealed record PostgresAlterRehearsal(
    PostgresTableFacts Facts,
    string Alter,
    ColumnMapping Mapping,
    IReadOnlyList<string> DroppedColumns,
    IReadOnlyList<string> AddedColumns,
    IReadOnlyList<string> KeyInShadow,
    PostgresReplicationNames Replication)
{
    /// <summary>
    /// `osc alter` without --execute: every check (leftover slot and publication included), then the shadow created
    /// with the real ALTER, so the server validates it against the real definition, and dropped again.
    /// </summary>
    public static async Task<PostgresAlterRehearsal> RunAsync(ConnectionTarget target, TableName table, string alter, CancellationToken cancellationToken,
        bool verify = true)
    {
        ArgumentNullException.ThrowIfNull(table);
        AlterStatement statement = AlterStatement.Parse(alter, table, SqlDialect.Postgres);
        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);

        // The run lock, held until the connection closes: a live run is named as such instead of its shadow, slot
        // and publication being called an unfinished run's leftovers.
        string schema = table.Schema ?? await new PostgresCatalog(connection).ScalarAsync<string>("SELECT current_schema()", cancellationToken);
        await PostgresLeftoverSessions.HoldRunLockAsync(connection, new PostgresReplicationNames(connection.Database, new TableName(schema, table.Name)),
            "A dry run now would find its shadow in the way.", cancellationToken);
        PostgresTableFacts facts = await new PostgresInspector(connection).InspectAsync(table, statement, cancellationToken);
        var names = new PostgresReplicationNames(connection.Database, facts.Table);
        if (await PostgresReplicationSlot.FindLeftoverAsync(connection, names, cancellationToken) is { } leftover)
        {
            throw PostgresReplicationSlot.Leftover(leftover, names);
        }

        PostgresShadowTable shadow = await PostgresShadowTable.CreateAsync(connection, facts, statement, cancellationToken);
        try
        {
            await shadow.RefuseUnverifiedUniqueKeyAsync(connection, facts, verify, cancellationToken);
            var fed = shadow.Mapping.TargetColumns.ToHashSet(StringComparer.Ordinal);
            return new PostgresAlterRehearsal(facts, statement.Source.Trim(), shadow.Mapping, shadow.DroppedColumns(facts).ToList(),
                shadow.Columns.Where(c => !fed.Contains(c.Name)).Select(c => c.Name).ToList(), shadow.KeyInShadow, names);
        }
        finally
        {
            await shadow.DropAsync(connection);
        }
    }
}
