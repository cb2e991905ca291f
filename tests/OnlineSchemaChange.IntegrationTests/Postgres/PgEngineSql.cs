using Npgsql;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Migration;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>One-line SQL and setup shortcuts for the PostgreSQL engine tests: each call on its own short connection.</summary>
internal static class PgEngineSql
{
    public static Task ExecuteAsync(string connectionString, string sql) => PgSql.ExecuteAsync(connectionString, sql);

    public static Task<string> ScalarAsync(string connectionString, string sql) => PgSql.ScalarAsync(connectionString, sql);

    /// <summary>Relations whose name has "osc" in it: what a refused run must not have created.</summary>
    public static Task<string> OurRelationsAsync(string connectionString) =>
        ScalarAsync(connectionString, "SELECT coalesce(string_agg(relname, ',' ORDER BY relname), '') FROM pg_class WHERE relname LIKE '%osc%' AND relnamespace = 'public'::regnamespace");

    public static async Task<(PostgresTableFacts Facts, PostgresShadowTable Shadow, AlterStatement Statement)> ShadowAsync(string connectionString, string table, string alter)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var name = new TableName(null, table);
        AlterStatement statement = AlterStatement.Parse(alter, name, SqlDialect.Postgres);
        PostgresTableFacts facts = await new PostgresInspector(connection).InspectAsync(name, statement, CancellationToken.None);
        PostgresShadowTable shadow = await PostgresShadowTable.CreateAsync(connection, facts, statement, CancellationToken.None);
        return (facts, shadow, statement);
    }

    /// <summary>
    /// Rows where the shadow differs from the original converted as the ALTER says (each mapped column, in the new
    /// type), plus rows only one side has: 0 when the shadow is a faithful copy.
    /// </summary>
    public static Task<string> DifferencesAsync(string connectionString, PostgresTableFacts facts, PostgresShadowTable shadow)
    {
        var pairs = shadow.Mapping.Pairs;
        string original = string.Join(", ", facts.Key.Select((k, i) => $"\"{k}\" AS k{i}")
            .Concat(pairs.Select((p, i) => $"({shadow.SourceExpressions[p.Target]})::{shadow.ColumnTypes[p.Target]} AS c{i}")));
        string copy = string.Join(", ", shadow.KeyInShadow.Select((k, i) => $"\"{k}\" AS k{i}")
            .Concat(pairs.Select((p, i) => $"\"{p.Target}\" AS c{i}")));
        string join = string.Join(" AND ", facts.Key.Select((_, i) => $"o.k{i} = s.k{i}"));
        string differs = string.Join(" OR ", pairs.Select((_, i) => $"o.c{i}::text IS DISTINCT FROM s.c{i}::text"));
        return ScalarAsync(connectionString,
            $"SELECT count(*) FROM (SELECT {original} FROM \"{facts.Table.Name}\") o FULL JOIN (SELECT {copy} FROM \"{shadow.Table.Name}\") s ON {join} " +
            $"WHERE o.k0 IS NULL OR s.k0 IS NULL OR {differs}");
    }
}
