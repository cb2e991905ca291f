using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Postgres.Plan;

/// <summary>Expand-contract steps in PostgreSQL SQL; every DDL step with a lock_timeout, since a queued lock blocks all.</summary>
public sealed class PostgresExpandContractSql : IExpandContractSql
{
    public static PostgresExpandContractSql Instance { get; } = new();

    public string QuoteIdentifier(string identifier) => PostgresSql.Quote(identifier);

    public string AddColumn(TableName table, string column, string type) =>
        $"SET lock_timeout = '2s'; ALTER TABLE {PostgresSql.Quote(table)} ADD COLUMN {QuoteIdentifier(column)} {type};";

    public string MakeNullable(TableName table, string column, string type) =>
        $"SET lock_timeout = '2s'; ALTER TABLE {PostgresSql.Quote(table)} ALTER COLUMN {QuoteIdentifier(column)} DROP NOT NULL;";

    public string BackfillBatch(TableName table, IReadOnlyList<string> keyColumns, string column, string expression)
    {
        ArgumentNullException.ThrowIfNull(keyColumns);
        return KeysetBatch.Render(PostgresSql.Quote(table), keyColumns.Select(QuoteIdentifier).ToList(), QuoteIdentifier(column), expression);
    }

    public string CountMismatches(TableName table, string column, string expression) =>
        $"SELECT count(*) FROM {PostgresSql.Quote(table)} WHERE {QuoteIdentifier(column)} IS DISTINCT FROM {expression};";

    public string Cast(string expression, string type) => $"CAST({expression} AS {type})";

    public string DropColumn(TableName table, string column) =>
        $"SET lock_timeout = '2s'; ALTER TABLE {PostgresSql.Quote(table)} DROP COLUMN {QuoteIdentifier(column)};";

    public string RenameTableBehindView(TableName table, string newName)
    {
        ArgumentNullException.ThrowIfNull(table);
        var renamed = table with { Name = newName };

        // One transaction: no moment exists where the old name resolves to nothing.
        return $"BEGIN; SET LOCAL lock_timeout = '2s'; ALTER TABLE {PostgresSql.Quote(table)} RENAME TO {QuoteIdentifier(newName)}; CREATE VIEW {PostgresSql.Quote(table)} AS SELECT * FROM {PostgresSql.Quote(renamed)}; COMMIT;";
    }

    public string DropView(TableName table) => $"DROP VIEW {PostgresSql.Quote(table)};";
}
