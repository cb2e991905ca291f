using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.MySql.Schema;

/// <summary>Identifier quoting for MySQL/MariaDB.</summary>
public static class MySqlSql
{
    public static string Quote(string identifier)
    {
        ArgumentNullException.ThrowIfNull(identifier);
        return "`" + identifier.Replace("`", "``", StringComparison.Ordinal) + "`";
    }

    public static string Quote(TableName table)
    {
        ArgumentNullException.ThrowIfNull(table);
        return table.Schema is null ? Quote(table.Name) : $"{Quote(table.Schema)}.{Quote(table.Name)}";
    }
}
