using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Plan;

/// <summary>Expand-contract steps in MySQL/MariaDB SQL.</summary>
public sealed class MySqlExpandContractSql : IExpandContractSql
{
    public static MySqlExpandContractSql Instance { get; } = new();

    public string QuoteIdentifier(string identifier) => MySqlSql.Quote(identifier);

    public string AddColumn(TableName table, string column, string type) =>
        $"ALTER TABLE {MySqlSql.Quote(table)} ADD COLUMN {QuoteIdentifier(column)} {type} NULL, ALGORITHM=INSTANT;";

    public string MakeNullable(TableName table, string column, string type) =>
        $"ALTER TABLE {MySqlSql.Quote(table)} MODIFY {QuoteIdentifier(column)} {type} NULL;";

    public string BackfillBatch(TableName table, IReadOnlyList<string> keyColumns, string column, string expression) =>
        KeysetBatch.Render(MySqlSql.Quote(table), keyColumns.Select(QuoteIdentifier).ToList(), QuoteIdentifier(column), expression);

    public string CountMismatches(TableName table, string column, string expression) =>
        $"SELECT COUNT(*) FROM {MySqlSql.Quote(table)} WHERE NOT ({QuoteIdentifier(column)} <=> {expression});";

    public string Cast(string expression, string type) => $"CAST({expression} AS {CastTarget(type)})";

    public string DropColumn(TableName table, string column) =>
        $"ALTER TABLE {MySqlSql.Quote(table)} DROP COLUMN {QuoteIdentifier(column)};";

    public string RenameTableBehindView(TableName table, string newName)
    {
        ArgumentNullException.ThrowIfNull(table);
        var renamed = table with { Name = newName };
        return $"RENAME TABLE {MySqlSql.Quote(table)} TO {MySqlSql.Quote(renamed)}; CREATE VIEW {MySqlSql.Quote(table)} AS SELECT * FROM {MySqlSql.Quote(renamed)};";
    }

    public string DropView(TableName table) => $"DROP VIEW {MySqlSql.Quote(table)};";

    // CAST accepts only a few target names; integers go through SIGNED/UNSIGNED, strings through CHAR.
    private static string CastTarget(string type)
    {
        string t = type.ToLowerInvariant();
        return t.Contains("int", StringComparison.Ordinal) ? (t.Contains("unsigned", StringComparison.Ordinal) ? "UNSIGNED" : "SIGNED")
            : t.StartsWith("varchar", StringComparison.Ordinal) || t.StartsWith("char", StringComparison.Ordinal) || t.Contains("text", StringComparison.Ordinal) ? "CHAR"
            : type;
    }
}
