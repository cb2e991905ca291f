using System.Text.Json;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// The shadow's plain secondary indexes are built after the copy, unless a watched replica would then replay the build
/// as one long statement; either way the new table has every index.
/// </summary>
[Collection("servers")]
public sealed class MySqlDeferredIndexTests(ServersFixture servers)
{
    private const string Alter = "MODIFY k BIGINT NOT NULL";

    [Theory]
    [InlineData("auto", true, false)]
    [InlineData("on", true, true)]
    [InlineData("off", false, false)]
    [InlineData("auto", false, true)]
    public async Task Indexes_are_built_after_the_copy_unless_a_watched_replica_would_fall_behind(string setting, bool withReplica, bool builtAfter)
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "deferred", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40), KEY k_ix (k), KEY c_ix (c(10), k));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_5000;
            """);
        string[] replicas = withReplica
            ? ["--replica", $"mysql://127.0.0.1:{new MySqlConnectionStringBuilder(await servers.MySqlReplicaAsync()).Port}"]
            : ["--no-replica-discovery"];
        string before = await IndexesAsync(db.ConnectionString);

        OscRunner.Result result = await OscRunner.RunAsync(["alter", db.Uri, "--table", "t", "--alter", Alter, "--execute", "--json", "--defer-indexes", setting, .. replicas]);

        Assert.True(result.ExitCode == 0, result.Stderr);
        IReadOnlyList<JsonElement> events = LiveOscRun.ParseAll(result.Stdout);
        bool built = events.Any(e => e.TryGetProperty("phase", out JsonElement phase) && phase.GetString() == "building indexes");
        Assert.Equal(builtAfter, built);
        string[] notes = [.. events.Single(e => e.GetProperty("event").GetString() == "done").GetProperty("notes").EnumerateArray().Select(n => n.GetString()!)];
        Assert.Equal(setting == "auto" && withReplica, notes.Any(n => n.Contains("filled during the copy", StringComparison.Ordinal) && n.Contains("k_ix, c_ix", StringComparison.Ordinal)));
        Assert.Equal(before, await IndexesAsync(db.ConnectionString));
        Assert.Equal("bigint", await ScalarAsync(db.ConnectionString, "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
    }

    [Fact]
    public async Task Defer_indexes_is_refused_on_postgres()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("deferred");
        await Postgres.PgSql.ExecuteAsync(connectionString, "CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL)");

        OscRunner.Result result = await OscRunner.RunAsync("alter", Postgres.PgSql.OscUri(connectionString), "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--defer-indexes", "off");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--defer-indexes is for MySQL/MariaDB", result.Stderr, StringComparison.Ordinal);
    }

    private static Task<string> IndexesAsync(string connectionString) => ScalarAsync(connectionString,
        "SELECT GROUP_CONCAT(CONCAT_WS(':', INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, COALESCE(SUB_PART, '')) ORDER BY INDEX_NAME, SEQ_IN_INDEX) "
        + "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't'");
}
