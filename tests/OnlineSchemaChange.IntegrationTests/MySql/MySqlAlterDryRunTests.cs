using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>`osc alter` without --execute, and `osc cleanup`, against a real MariaDB.</summary>
[Collection("servers")]
public sealed class MySqlAlterDryRunTests(ServersFixture servers) : IAsyncLifetime
{
    private string _connectionString = "";
    private string _uri = "";
    private string _database = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewMySqlDatabaseAsync("alter");
        var builder = new MySqlConnectionStringBuilder(_connectionString);
        _database = builder.Database;
        _uri = $"mysql://{builder.UserID}:{builder.Password}@{builder.Server}:{builder.Port}/{builder.Database}";
        await ExecuteAsync("""
            CREATE TABLE orders (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(20), legacy INT, g INT AS (k + 1) VIRTUAL);
            INSERT INTO orders (id, k, c, legacy) VALUES (1, 1, 'a', 1), (2, 2, 'b', 2);
            """);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_dry_run_checks_builds_the_shadow_with_the_alter_and_leaves_nothing()
    {
        string before = await DefinitionAsync("orders");

        var result = await OscRunner.RunAsync("alter", _uri, "--table", "orders", "--alter",
            "MODIFY k BIGINT NOT NULL, RENAME COLUMN c TO label, DROP COLUMN legacy, ADD COLUMN note TEXT", "--json");

        Assert.Equal(0, result.ExitCode);
        Assert.True(result.Json.GetProperty("dryRun").GetBoolean());
        Assert.Equal("orders_osc_new", result.Json.GetProperty("shadowTable").GetString());
        Assert.Equal(["id>id", "k>k", "c>label"], result.Json.GetProperty("columns").EnumerateArray()
            .Select(c => $"{c.GetProperty("source").GetString()}>{c.GetProperty("target").GetString()}"));
        Assert.Equal(["legacy"], result.Json.GetProperty("droppedColumns").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(["note"], result.Json.GetProperty("addedColumns").EnumerateArray().Select(c => c.GetString()));
        Assert.Contains("bigint", result.Json.GetProperty("shadowDefinition").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, await DefinitionAsync("orders"));
        Assert.Equal(0L, await CountOursAsync());
    }

    [Theory]
    [InlineData("CREATE TABLE nokey (a INT, b INT)", "nokey", "ADD COLUMN x INT", "no primary key and no unique key")]
    [InlineData("CREATE TABLE trig (id INT PRIMARY KEY, v INT); CREATE TRIGGER trig_bi BEFORE INSERT ON trig FOR EACH ROW SET NEW.v = 1", "trig", "ADD COLUMN x INT", "has triggers (trig_bi)")]
    [InlineData("CREATE TABLE parent (id INT PRIMARY KEY); CREATE TABLE child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES parent (id))", "child", "ADD COLUMN x INT", "has foreign keys")]
    [InlineData("CREATE TABLE parent (id INT PRIMARY KEY); CREATE TABLE child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES parent (id))", "parent", "ADD COLUMN x INT", "has foreign keys")]
    [InlineData("CREATE TABLE my (id INT PRIMARY KEY) ENGINE=MyISAM", "my", "ADD COLUMN x INT", "uses the MyISAM engine")]
    [InlineData("", "orders", "ENGINE=MyISAM", "changes the engine of")]
    [InlineData("CREATE TABLE sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING", "sv", "ADD COLUMN x INT", "system-versioned table")]
    [InlineData("", "orders", "RENAME TO orders2", "renames the table")]
    [InlineData("", "orders", "ADD COLUMN z INT NOT NULL", "NOT NULL without a default")]
    [InlineData("", "orders", "DROP COLUMN id, ADD PRIMARY KEY (k)", "drops a column of the key")]
    [InlineData("", "orders", "MODIFY k NOSUCHTYPE", "The server rejects the ALTER")]
    [InlineData("CREATE TABLE orders_osc_new (id INT)", "orders", "ADD COLUMN x INT", "--resume")]
    // 57 characters: <table>_osc_new would pass the 64-character limit.
    [InlineData("CREATE TABLE a23456789012345678901234567890123456789012345678901234567 (id INT PRIMARY KEY)",
        "a23456789012345678901234567890123456789012345678901234567", "ADD COLUMN x INT", "is too long for the migration's own tables (56 characters at most)")]
    [InlineData("CREATE TABLE orders_osc_old (id INT)", "orders", "ADD COLUMN x INT", "--drop-old-table")]
    public async Task Unsafe_migrations_are_refused_before_anything_is_created(string setup, string table, string alter, string expected)
    {
        if (setup.Length > 0)
        {
            await ExecuteAsync(setup);
        }

        long oursBefore = await CountOursAsync();
        string before = await DefinitionAsync(table);

        // The rebuild's checks: several of these ALTERs are catalog changes that `--native auto` would run natively.
        var result = await OscRunner.RunAsync("alter", _uri, "--table", table, "--alter", alter, "--native", "off");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.Contains("fix:", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await DefinitionAsync(table));
        Assert.Equal(oursBefore, await CountOursAsync());
    }

    [Theory]
    [InlineData("ADD UNIQUE KEY by_k (k)", false)]
    [InlineData("ADD UNIQUE KEY by_k (k)", true)]
    // A case-insensitive collation makes 'A' and 'a' equal: the key by_c is new in effect.
    [InlineData("MODIFY c VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", true)]
    public async Task Skipping_verification_is_refused_when_the_alter_adds_a_unique_key(string alter, bool execute)
    {
        await ExecuteAsync("ALTER TABLE orders MODIFY c VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, ADD UNIQUE KEY by_c (c); INSERT INTO orders (id, k, c) VALUES (3, 1, 'A'), (4, 9, 'B')");
        string before = await DefinitionAsync("orders");
        string rows = await ScalarAsync("SELECT GROUP_CONCAT(CONCAT_WS(':', id, k, c) ORDER BY id) FROM orders");

        var result = await OscRunner.RunAsync(["alter", _uri, "--table", "orders", "--alter", alter, "--skip-verify", "--native", "off", .. execute ? ["--execute"] : Array.Empty<string>()]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--skip-verify with an ALTER that adds the unique key by_", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("Run without --skip-verify", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await DefinitionAsync("orders"));
        Assert.Equal(rows, await ScalarAsync("SELECT GROUP_CONCAT(CONCAT_WS(':', id, k, c) ORDER BY id) FROM orders"));
        Assert.Equal(0L, await CountOursAsync());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Skipping_verification_is_refused_on_a_table_with_a_unique_key_beside_the_primary_key(bool execute)
    {
        await ExecuteAsync("ALTER TABLE orders ADD UNIQUE KEY by_c (c)");
        string before = await DefinitionAsync("orders");

        var result = await OscRunner.RunAsync(["alter", _uri, "--table", "orders", "--alter", "ADD COLUMN x INT", "--skip-verify", "--native", "off",
            .. execute ? ["--execute"] : Array.Empty<string>()]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--skip-verify on a table with the unique key by_c beside the key", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("Run without --skip-verify", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await DefinitionAsync("orders"));
        Assert.Equal(0L, await CountOursAsync());
    }

    [Fact]
    public async Task Skipping_verification_is_accepted_when_every_unique_key_was_there_before()
    {
        // The primary key widened over the old one cannot make two rows collide.
        var result = await OscRunner.RunAsync("alter", _uri, "--table", "orders", "--alter", "MODIFY k BIGINT NOT NULL, DROP PRIMARY KEY, ADD PRIMARY KEY (id, k)",
            "--skip-verify", "--native", "off");

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(0L, await CountOursAsync());
    }

    [Fact]
    public async Task A_server_without_binary_logging_is_refused_before_anything_is_created()
    {
        // log_bin cannot change on a running server: a throwaway one started without it.
        await using var server = await OnlineSchemaChange.LocalServers.LocalMariaDb.StartAsync(
            new OnlineSchemaChange.LocalServers.MariaDbOptions { ExtraArguments = ["--skip-log-bin"] });
        string connectionString = new MySqlConnectionStringBuilder(server.ConnectionString) { Database = "shop" }.ConnectionString;
        await using (var setup = new MySqlConnection(server.ConnectionString))
        {
            await setup.OpenAsync();
            await using var create = new MySqlCommand("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, k INT NOT NULL)", setup);
            await create.ExecuteNonQueryAsync();
        }

        var builder = new MySqlConnectionStringBuilder(connectionString);
        var result = await OscRunner.RunAsync("alter", $"mysql://{builder.UserID}:{builder.Password}@{builder.Server}:{builder.Port}/shop", "--table", "orders",
            "--alter", "MODIFY k BIGINT NOT NULL", "--native", "off", "--execute");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Binary logging is off on this server", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("log_bin", result.Stderr, StringComparison.Ordinal);
        await using var check = new MySqlConnection(connectionString);
        await check.OpenAsync();
        await using var tables = new MySqlCommand("SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'", check);
        Assert.Equal("orders", await tables.ExecuteScalarAsync());
    }

    [Theory]
    [InlineData("binlog_format", "STATEMENT", "binlog_format is STATEMENT")]
    [InlineData("binlog_row_image", "MINIMAL", "binlog_row_image is MINIMAL")]
    public async Task Binlog_settings_that_hide_row_changes_are_refused(string variable, string value, string expected)
    {
        string original = await ScalarAsync($"SELECT @@global.{variable}");
        await ExecuteAsync($"SET GLOBAL {variable} = '{value}'");
        try
        {
            var result = await OscRunner.RunAsync("alter", _uri, "--table", "orders", "--alter", "ADD COLUMN x INT", "--native", "off");

            Assert.Equal(1, result.ExitCode);
            Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
            Assert.Equal(0L, await CountOursAsync());
        }
        finally
        {
            await ExecuteAsync($"SET GLOBAL {variable} = '{original}'");
        }
    }

    [Fact]
    public async Task Cleanup_removes_our_leftovers_and_keeps_the_old_table_unless_asked()
    {
        await ExecuteAsync("""
            CREATE TABLE orders_osc_new (id INT); CREATE TABLE orders_osc_log (id INT); CREATE TABLE orders_osc_fkc (id INT);
            CREATE TABLE _orders_osc_plan (id INT); CREATE TABLE orders_osc_old (id INT); CREATE TABLE others_osc_new (id INT);
            """);

        var result = await OscRunner.RunAsync("cleanup", _uri, "--table", "orders", "--json");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(4, result.Json.GetProperty("dropped").GetArrayLength());
        Assert.Equal($"{_database}.orders_osc_old", Assert.Single(result.Json.GetProperty("kept").EnumerateArray()).GetString());
        Assert.Equal("orders_osc_old,others_osc_new", await ScalarAsync($"SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{_database}' AND TABLE_NAME LIKE '%osc%'"));

        var again = await OscRunner.RunAsync("cleanup", _uri, "--table", "orders", "--drop-old-table");
        Assert.Equal(0, again.ExitCode);
        Assert.Equal("others_osc_new", await ScalarAsync($"SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{_database}' AND TABLE_NAME LIKE '%osc%'"));
    }

    [Fact]
    public async Task Cleanup_drops_a_sentry_left_by_a_killed_cut_over()
    {
        await ExecuteAsync("CREATE TABLE orders_osc_old (osc_sentry INT)");

        var result = await OscRunner.RunAsync("cleanup", _uri, "--table", "orders", "--json");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal($"{_database}.orders_osc_old", Assert.Single(result.Json.GetProperty("dropped").EnumerateArray()).GetString());
        Assert.Equal(0L, await CountOursAsync());
    }

    private async Task<long> CountOursAsync() =>
        long.Parse(await ScalarAsync($"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{_database}' AND TABLE_NAME LIKE '%\\_osc\\_%'"), System.Globalization.CultureInfo.InvariantCulture);

    private async Task<string> DefinitionAsync(string table)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand($"SHOW CREATE TABLE `{table}`", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return reader.GetString(1);
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<string> ScalarAsync(string sql)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        return Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture) ?? "";
    }
}
