using System.Globalization;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>Migrations of two tables of one server at the same time, each with its own binlog stream.</summary>
[Collection("servers")]
public sealed class MySqlConcurrentMigrationTests(ServersFixture servers)
{
    /// <summary>
    /// Both runs are held by their flag files with their streams up; the rows written to each table then must reach
    /// its new table. Were both streams registered with one server id, the server would end the first stream when the
    /// second registered, and that run would fail.
    /// </summary>
    [Fact]
    public async Task Two_migrations_on_one_server_both_stream_and_complete()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "concurrent", """
            CREATE TABLE a (id INT PRIMARY KEY, k INT NOT NULL);
            INSERT INTO a SELECT seq, seq FROM seq_1_to_2000;
            CREATE TABLE b (id INT PRIMARY KEY, k INT NOT NULL);
            INSERT INTO b SELECT seq, seq FROM seq_1_to_2000;
            """);
        using var flagA = new FlagFile("concurrent-a");
        using var flagB = new FlagFile("concurrent-b");
        LiveOscRun runA = LiveOscRun.Start("alter", db.Uri, "--table", "a", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json", "--throttle-flag-file", flagA.Path);
        LiveOscRun runB = LiveOscRun.Start("alter", db.Uri, "--table", "b", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json", "--throttle-flag-file", flagB.Path);
        await runA.WaitForThrottledAsync("flag file", TimeSpan.FromSeconds(60));
        await runB.WaitForThrottledAsync("flag file", TimeSpan.FromSeconds(60));
        await WaitForOscStreamsAsync(db.ConnectionString, 2);

        await ExecuteAsync(db.ConnectionString, "INSERT INTO a VALUES (5001, 1); UPDATE a SET k = -1 WHERE id = 1; DELETE FROM a WHERE id = 2");
        await ExecuteAsync(db.ConnectionString, "INSERT INTO b VALUES (5001, 1); UPDATE b SET k = -1 WHERE id = 1; DELETE FROM b WHERE id = 2");
        flagA.Lift();
        flagB.Lift();

        foreach ((string table, LiveOscRun run) in new[] { ("a", runA), ("b", runB) })
        {
            OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));
            Assert.True(result.ExitCode == 0, $"{table}: {result.Stderr}");
            Assert.Equal("bigint(20)", await ScalarAsync(db.ConnectionString,
                $"SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' AND COLUMN_NAME = 'k'"));
            Assert.Equal("2000", await ScalarAsync(db.ConnectionString, $"SELECT COUNT(*) FROM {table}"));
            Assert.Equal("-1", await ScalarAsync(db.ConnectionString, $"SELECT k FROM {table} WHERE id = 1"));
            Assert.Equal("0", await ScalarAsync(db.ConnectionString, $"SELECT COUNT(*) FROM {table} WHERE id = 2"));
            Assert.Equal("1", await ScalarAsync(db.ConnectionString, $"SELECT COUNT(*) FROM {table} WHERE id = 5001"));
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> osc streams are registered on the server.</summary>
    private static async Task WaitForOscStreamsAsync(string connectionString, int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            int registered = 0;
            await using (var connection = new MySqlConnector.MySqlConnection(connectionString))
            {
                await connection.OpenAsync();
                await using var command = new MySqlConnector.MySqlCommand("SHOW SLAVE HOSTS", connection);
                await using MySqlConnector.MySqlDataReader reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    registered += reader.GetString(1) == OnlineSchemaChange.MySql.Replication.BinlogClientOptions.OscReportHost ? 1 : 0;
                }
            }

            if (registered >= count)
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{registered.ToString(CultureInfo.InvariantCulture)} osc streams registered, waiting for {count}");
            await Task.Delay(50);
        }
    }
}
