using Npgsql;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.Postgres.Apply;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>The replay's writer against real shadow tables on PostgreSQL 15.</summary>
[Collection("servers")]
public sealed class PostgresChangeWriterTests(ServersFixture servers)
{
    private static readonly UnchangedValue U = UnchangedValue.Instance;

    [Fact]
    public async Task Rows_that_swap_a_unique_value_within_one_batch_are_written_by_deleting_the_batchs_keys_first()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("writer");
        await ExecuteAsync(connectionString, """
            CREATE TABLE u (id int PRIMARY KEY, email text NOT NULL UNIQUE);
            CREATE TABLE u_osc_new (LIKE u INCLUDING ALL);
            INSERT INTO u_osc_new VALUES (1, 'a@x'), (2, 'b@x'), (3, 'c@x');
            """);
        PostgresChangeWriter writer = await WriterAsync(connectionString, "u", "u_osc_new", new Dictionary<string, string>());
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(new RowKey(1L), new RowKey(1L), ["1", "b@x"]));
        pending.Add(RowChange.Update(new RowKey(2L), new RowKey(2L), ["2", "a@x"]));
        pending.Add(RowChange.Delete(new RowKey(3L)));

        await writer.WriteAsync(pending.Drain(), CancellationToken.None);

        Assert.Equal("1:b@x,2:a@x", await ScalarAsync(connectionString, "SELECT string_agg(id || ':' || email, ',' ORDER BY id) FROM u_osc_new"));
    }

    [Fact]
    public async Task Values_reach_renamed_retyped_and_identity_columns_through_the_copys_expressions_and_unsent_columns_stay()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("writer");
        await ExecuteAsync(connectionString, """
            CREATE TABLE o (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code text, name text, doc jsonb);
            CREATE TABLE o_osc_new (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code int, title text, doc jsonb, extra int NOT NULL DEFAULT 7);
            INSERT INTO o (code, name, doc) OVERRIDING SYSTEM VALUE VALUES ('1', 'one', '{"keep": 1}'), ('2', 'two', '{"keep": 2}');
            INSERT INTO o_osc_new (id, code, title, doc) OVERRIDING SYSTEM VALUE VALUES (1, 10, 'one', '{"keep": 1}'), (2, 20, 'two', '{"keep": 2}');
            """);
        PostgresChangeWriter writer = await WriterAsync(connectionString, "o", "o_osc_new", new Dictionary<string, string> { ["name"] = "title" },
            new Dictionary<string, string> { ["id"] = "\"id\"", ["code"] = "CAST(\"code\" AS integer) * 10", ["title"] = "upper(\"name\")", ["doc"] = "\"doc\"" });
        var pending = new PendingChanges();
        pending.Add(RowChange.Insert(new RowKey(5L), ["5", "3", "five", "{\"new\": true}"]));
        pending.Add(RowChange.Update(new RowKey(1L), new RowKey(1L), ["1", "4", "uno", U]));
        pending.Add(RowChange.Update(new RowKey(2L), new RowKey(9L), ["9", U, "nine", U]));

        await writer.WriteAsync(pending.Drain(), CancellationToken.None);

        Assert.Equal("""1:40:UNO:{"keep": 1}:7,5:30:FIVE:{"new": true}:7,9:20:NINE:{"keep": 2}:7""",
            await ScalarAsync(connectionString, "SELECT string_agg(concat_ws(':', id, code, title, doc, extra), ',' ORDER BY id) FROM o_osc_new"));
    }

    private static async Task<PostgresChangeWriter> WriterAsync(string connectionString, string original, string shadow,
        Dictionary<string, string> renames, Dictionary<string, string>? expressions = null)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var source = await PostgresColumnTypes.ReadAsync(connection, new TableName("public", original), CancellationToken.None);
        var target = await PostgresColumnTypes.ReadAsync(connection, new TableName("public", shadow), CancellationToken.None);
        var mapping = ColumnMapping.Build(source.Select(c => new TableColumn(c.Name, false)).ToList(), target.Select(c => new TableColumn(c.Name, false)).ToList(), renames);
        return new PostgresChangeWriter(connectionString, new TableName("public", original), new TableName("public", shadow), source, ["id"], ["id"], mapping, expressions);
    }
}
