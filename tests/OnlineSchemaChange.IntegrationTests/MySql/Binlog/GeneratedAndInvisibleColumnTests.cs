using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>
/// Tables with generated (virtual and stored) and invisible columns: the decoded rows name every column the server
/// logs and carry the values SELECT returns, so a consumer never shifts a value into the wrong column.
/// </summary>
[Collection("servers")]
public sealed class GeneratedAndInvisibleColumnTests(ServersFixture servers)
{
    private readonly BinlogTestServer _server = new(servers);

    [Fact]
    public async Task Rows_of_a_table_with_generated_and_invisible_columns_decode_to_what_select_returns()
    {
        string db = await _server.NewDatabaseAsync("gencols");
        await _server.ExecuteAsync(
            "CREATE TABLE g (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL, s INT AS (a + 1) PERSISTENT, hidden INT INVISIBLE DEFAULT 5, b VARCHAR(10))", db);
        var start = await _server.CurrentPositionAsync();
        await _server.ExecuteAsync("INSERT INTO g (id, a, hidden, b) VALUES (1, 10, 7, 'x'); UPDATE g SET a = 20, hidden = 8 WHERE id = 1", db);

        await using var client = new BinlogClient(new BinlogClientOptions(await _server.EndpointAsync()) { Start = start, Tables = new HashSet<string> { db + ".g" } });
        var events = await BinlogTestServer.ReadRowsAsync(client, db, 2, TimeSpan.FromSeconds(30));
        var last = events[^1];
        object?[] after = last.Rows[^1].After!;
        var decoded = Enumerable.Range(0, after.Length).ToDictionary(last.ColumnName, i => after[i]);

        var selected = new Dictionary<string, object?>();
        await using (MySqlConnection connection = await _server.OpenAsync(db))
        {
            await using var command = new MySqlCommand("SELECT id, a, v, s, hidden, b FROM g WHERE id = 1", connection);
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            for (int i = 0; i < reader.FieldCount; i++)
            {
                selected[reader.GetName(i)] = reader.GetValue(i);
            }
        }

        // Stored and invisible columns are in every row image; a virtual one may be left out, but never misplaced.
        Assert.Superset(new HashSet<string> { "id", "a", "s", "hidden", "b" }, decoded.Keys.ToHashSet());
        foreach ((string column, object? value) in decoded)
        {
            Assert.Equal(Convert.ToString(selected[column], System.Globalization.CultureInfo.InvariantCulture),
                Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture));
        }

        Assert.Equal("8", Convert.ToString(decoded["hidden"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("21", Convert.ToString(decoded["s"], System.Globalization.CultureInfo.InvariantCulture));
    }
}
