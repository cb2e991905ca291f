using Npgsql;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Postgres.Apply;

/// <summary>A table's columns in their order, each with its SQL type as format_type() writes it (typmods included).</summary>
public static class PostgresColumnTypes
{
    public static async Task<IReadOnlyList<(string Name, string Type)>> ReadAsync(NpgsqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        await using var command = new NpgsqlCommand("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = @schema AND c.relname = @table AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, connection);
        command.Parameters.AddWithValue("schema", table.Schema ?? "public");
        command.Parameters.AddWithValue("table", table.Name);
        var columns = new List<(string, string)>();
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            columns.Add((reader.GetString(0), reader.GetString(1)));
        }

        return columns;
    }
}
