using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Copy;
using OnlineSchemaChange.MySql.Replication;
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
    string ShadowDefinition)
{
    /// <summary>What the migration would do to each foreign key to or from the table, with its statements.</summary>
    public IReadOnlyList<ForeignKeyAction> ForeignKeys { get; init; } = [];

    /// <summary>What the run would do differently from what was asked, and why (such as fewer copy workers).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>
/// `osc alter` without --execute, as gh-ost's default: every check, then the shadow table created with the real ALTER
/// (so the server validates it against the real definition), the column mapping worked out, and the shadow dropped.
/// </summary>
public sealed class MySqlAlterRehearsal(ConnectionTarget target)
{
    public async Task<AlterRehearsal> RunAsync(TableName table, string alter, CancellationToken cancellationToken, ForeignKeyMethod foreignKeys = ForeignKeyMethod.Refuse,
        int workers = 1, bool? copySkipReplication = null, bool verify = true)
    {
        ArgumentNullException.ThrowIfNull(table);
        AlterStatement statement = AlterStatement.Parse(alter, table, SqlDialect.MySql);
        string schema = table.Schema ?? target.Database ?? throw new OscException(
            $"No database given for table {table.Name}.", "Name it in the URI (mysql://host/db), with --database, or as --table db.table.");
        var qualified = new TableName(schema, table.Name);

        await using MySqlConnection connection = await MySqlConnections.OpenAsync(target, cancellationToken);

        // The run lock, held until the connection closes: a live run is named as such instead of its shadow being
        // called an unfinished run's leftover, and a run starting meanwhile waits for this one's shadow to go.
        await MySqlLeftoverSessions.HoldRunLockAsync(connection, qualified, "A dry run now would find its shadow in the way.", cancellationToken);
        MySqlTableFacts facts = await new MySqlInspector(connection).InspectAsync(qualified, statement, cancellationToken, foreignKeys: foreignKeys);
        CopyEventFilterDecision copyEvents = await CopyEventFilter.DecideAsync(connection, target, copySkipReplication, cancellationToken);
        ShadowTable shadow = await ShadowTable.CreateAsync(connection, facts, statement, cancellationToken);
        try
        {
            await shadow.RefuseUnverifiedUniqueKeyAsync(connection, qualified, verify, cancellationToken);
            (_, string? workersNote) = await MySqlCopyWorkers.ChooseAsync(connection, shadow.Table, workers, cancellationToken);
            return new AlterRehearsal(facts, statement.Source.Trim(), shadow.Mapping, shadow.DroppedColumns, shadow.AddedColumns,
                statement.RenamedColumns, shadow.KeyInShadow, await ShowCreateAsync(connection, shadow.Table, cancellationToken))
            {
                ForeignKeys = facts.ForeignKeys.Actions(facts.Names, shadow.Mapping),
                Notes = new[] { workersNote, copyEvents.Note }.OfType<string>().ToList(),
            };
        }
        finally
        {
            await shadow.DropAsync(connection);
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
