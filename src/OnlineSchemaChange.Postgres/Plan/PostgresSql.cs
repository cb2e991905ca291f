using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Postgres.Plan;

public static class PostgresSql
{
    public static string Quote(string identifier)
    {
        ArgumentNullException.ThrowIfNull(identifier);
        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    public static string Quote(TableName table)
    {
        ArgumentNullException.ThrowIfNull(table);
        return table.Schema is null ? Quote(table.Name) : $"{Quote(table.Schema)}.{Quote(table.Name)}";
    }
}
