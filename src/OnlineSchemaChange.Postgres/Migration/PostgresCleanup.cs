using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>What `osc cleanup` did with our tables: those it dropped and those it left for the operator (the swapped-out original).</summary>
public sealed record PostgresCleanupReport(IReadOnlyList<string> Dropped, IReadOnlyList<string> Kept);

/// <summary>
/// Finds and removes the tables a migration of one table leaves behind: the shadow and the bookkeeping table of an
/// interrupted run, and the original as it was before a finished swap (&lt;t&gt;_osc_old), which holds the old data
/// and is dropped only when asked. Replication slots and publications are the stream's and are cleaned up there.
/// </summary>
public sealed class PostgresCleanup(NpgsqlConnection connection)
{
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
                    $"Point those objects at {table.Name} (or drop them), then run cleanup again.", e);
            }

            dropped.Add(leftover.ToString());
        }

        return new PostgresCleanupReport(dropped, kept);
    }
}
