using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>
/// The shadow table, created with CREATE TABLE ... LIKE and the operator's ALTER (so the server validates the
/// statement against the real definition), with how rows of the original map onto it. Creation refuses, and drops
/// the shadow again, when the ALTER drops a column of the matching key or adds a NOT NULL column without a default.
/// </summary>
public sealed record ShadowTable(
    TableName Table,
    IReadOnlyList<MySqlColumn> Columns,
    ColumnMapping Mapping,
    IReadOnlyList<string> KeyInShadow,
    IReadOnlyList<string> DroppedColumns,
    IReadOnlyList<string> AddedColumns)
{
    public IReadOnlyDictionary<string, string> ColumnTypes => Columns.ToDictionary(c => c.Name, c => c.ColumnType, StringComparer.OrdinalIgnoreCase);

    public static async Task<ShadowTable> CreateAsync(MySqlConnection connection, MySqlTableFacts facts, AlterStatement statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(statement);
        var table = facts.Table with { Name = facts.Names.Shadow };
        var catalog = new MySqlCatalog(connection);
        await catalog.ExecuteAsync("SET SESSION lock_wait_timeout = 10", cancellationToken);
        await catalog.ExecuteAsync($"CREATE TABLE {MySqlSql.Quote(table)} LIKE {MySqlSql.Quote(facts.Table)}", cancellationToken);
        var created = new ShadowTable(table, [], ColumnMapping.Build([], [], new Dictionary<string, string>()), [], [], []);
        try
        {
            try
            {
                await catalog.ExecuteAsync(statement.RenderFor(MySqlSql.Quote(table)), cancellationToken);
            }
            catch (MySqlException e)
            {
                throw new OscException($"The server rejects the ALTER: {e.Message} (error {(int)e.ErrorCode})",
                    "Fix the statement; it was tried only on the (now removed) shadow table, the table is untouched.", e);
            }

            return await DescribeAsync(catalog, table, facts, statement, cancellationToken);
        }
        catch
        {
            await created.DropAsync(connection);
            throw;
        }
    }

    /// <summary>
    /// The shadow an interrupted run left (for --resume): described from the server as it is, with the same refusals
    /// as at creation, and never dropped here; it holds the copied rows.
    /// </summary>
    public static async Task<ShadowTable> OpenAsync(MySqlConnection connection, MySqlTableFacts facts, AlterStatement statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(statement);
        return await DescribeAsync(new MySqlCatalog(connection), facts.Table with { Name = facts.Names.Shadow }, facts, statement, cancellationToken);
    }

    private static async Task<ShadowTable> DescribeAsync(MySqlCatalog catalog, TableName table, MySqlTableFacts facts, AlterStatement statement, CancellationToken cancellationToken)
    {
        IReadOnlyList<MySqlColumn> columns = await catalog.ColumnsAsync(table, cancellationToken);
        ColumnMapping mapping = ColumnMapping.Build(
            facts.Columns.Select(c => new TableColumn(c.Name, c.Generated)).ToList(),
            columns.Select(c => new TableColumn(c.Name, c.Generated)).ToList(), statement.RenamedColumns);
        var mappedSources = mapping.SourceColumns.ToHashSet(StringComparer.OrdinalIgnoreCase);
        var mappedTargets = mapping.TargetColumns.ToHashSet(StringComparer.OrdinalIgnoreCase);

        string?[] keyInShadow = facts.Key.Select(k => mapping.Pairs.FirstOrDefault(p => p.Source.Equals(k, StringComparison.OrdinalIgnoreCase)).Target).ToArray();
        if (keyInShadow.Any(k => k is null))
        {
            throw new OscException($"The ALTER drops a column of the key {facts.KeyName} ({string.Join(", ", facts.Key)}) that matches changes to rows.",
                "Keep the key's columns, or change the key in a separate migration first.");
        }

        MySqlColumn? unfillable = columns.FirstOrDefault(c => !mappedTargets.Contains(c.Name) && !c.Nullable && !c.HasDefault && !c.Generated);
        if (unfillable is not null)
        {
            throw new OscException($"The ALTER adds {unfillable.Name} as NOT NULL without a default: copied rows would have no value for it.",
                $"Give it a default (ADD COLUMN {unfillable.Name} ... NOT NULL DEFAULT ...), or add it nullable and fill it afterwards.");
        }

        return new ShadowTable(table, columns, mapping, keyInShadow!,
            facts.Columns.Where(c => !c.Generated && !mappedSources.Contains(c.Name)).Select(c => c.Name).ToList(),
            columns.Where(c => !c.Generated && !mappedTargets.Contains(c.Name)).Select(c => c.Name).ToList());
    }

    /// <summary>Drops the shadow; not cancellable, since it must go even when the operator pressed Ctrl-C.</summary>
    public async Task DropAsync(MySqlConnection connection)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await new MySqlCatalog(connection).ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(Table)}", timeout.Token);
    }
}
