using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>What a dry run established: the checks passed, the shadow the ALTER produces, and how rows map onto it.</summary>
public sealed record AlterRehearsal(
    MySqlTableFacts Facts,
    string Alter,
    ColumnMapping Mapping,
    IReadOnlyList<string> DroppedColumns,
    IReadOnlyList<string> AddedColumns,
    IReadOnlyDictionary<string, string> RenamedColumns,
    IReadOnlyList<string> KeyInShadow,
    string ShadowDefinition);

/// <summary>
/// `osc alter` without --execute, as gh-ost's default: every check, then the shadow table created with the real ALTER
/// (so the server validates it against the real definition), the column mapping worked out, and the shadow dropped.
/// </summary>
public sealed class MySqlAlterRehearsal(ConnectionTarget target)
{
    public async Task<AlterRehearsal> RunAsync(TableName table, string alter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        AlterStatement statement = AlterStatement.Parse(alter, table, SqlDialect.MySql);
        string schema = table.Schema ?? target.Database ?? throw new OscException(
            $"No database given for table {table.Name}.", "Name it in the URI (mysql://host/db), with --database, or as --table db.table.");
        var qualified = new TableName(schema, table.Name);

        await using MySqlConnection connection = await MySqlConnections.OpenAsync(target, cancellationToken);
        MySqlTableFacts facts = await new MySqlInspector(connection).InspectAsync(qualified, statement, cancellationToken);
        var shadow = qualified with { Name = facts.Names.Shadow };
        var catalog = new MySqlCatalog(connection);
        await catalog.ExecuteAsync("SET SESSION lock_wait_timeout = 10", cancellationToken);
        await catalog.ExecuteAsync($"CREATE TABLE {MySqlSql.Quote(shadow)} LIKE {MySqlSql.Quote(qualified)}", cancellationToken);
        try
        {
            try
            {
                await catalog.ExecuteAsync(statement.RenderFor(MySqlSql.Quote(shadow)), cancellationToken);
            }
            catch (MySqlException e)
            {
                throw new OscException($"The server rejects the ALTER: {e.Message} (error {(int)e.ErrorCode})",
                    "Fix the statement; it was tried only on the (now removed) shadow table, the table is untouched.", e);
            }

            IReadOnlyList<MySqlColumn> shadowColumns = await catalog.ColumnsAsync(shadow, cancellationToken);
            IReadOnlyDictionary<string, string> renames = statement.RenamedColumns;
            ColumnMapping mapping = ColumnMapping.Build(
                facts.Columns.Select(c => new TableColumn(c.Name, c.Generated)).ToList(),
                shadowColumns.Select(c => new TableColumn(c.Name, c.Generated)).ToList(), renames);
            var mappedSources = mapping.SourceColumns.ToHashSet(StringComparer.OrdinalIgnoreCase);
            var mappedTargets = mapping.TargetColumns.ToHashSet(StringComparer.OrdinalIgnoreCase);

            string[] keyInShadow = facts.Key.Select(k => mapping.Pairs.FirstOrDefault(p => p.Source.Equals(k, StringComparison.OrdinalIgnoreCase)).Target).ToArray();
            if (keyInShadow.Any(k => k is null))
            {
                throw new OscException($"The ALTER drops a column of the key {facts.KeyName} ({string.Join(", ", facts.Key)}) that matches changes to rows.",
                    "Keep the key's columns, or change the key in a separate migration first.");
            }

            MySqlColumn? unfillable = shadowColumns.FirstOrDefault(c => !mappedTargets.Contains(c.Name) && !c.Nullable && !c.HasDefault && !c.Generated);
            if (unfillable is not null)
            {
                throw new OscException($"The ALTER adds {unfillable.Name} as NOT NULL without a default: copied rows would have no value for it.",
                    $"Give it a default (ADD COLUMN {unfillable.Name} ... NOT NULL DEFAULT ...), or add it nullable and fill it afterwards.");
            }

            return new AlterRehearsal(facts, statement.Source.Trim(), mapping,
                facts.Columns.Where(c => !c.Generated && !mappedSources.Contains(c.Name)).Select(c => c.Name).ToList(),
                shadowColumns.Where(c => !c.Generated && !mappedTargets.Contains(c.Name)).Select(c => c.Name).ToList(),
                renames, keyInShadow!, await ShowCreateAsync(connection, shadow, cancellationToken));
        }
        finally
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(shadow)}", timeout.Token);
        }
    }

    private static async Task<string> ShowCreateAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand($"SHOW CREATE TABLE {MySqlSql.Quote(table)}", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return reader.GetString(1);
    }
}
