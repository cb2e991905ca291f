using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.Plan;

/// <summary>`osc plan` against a real MariaDB: the verdict is the server's own, and the server is left as it was.</summary>
[Collection("servers")]
public sealed class MySqlPlanTests(ServersFixture servers) : IAsyncLifetime
{
    private string _connectionString = "";
    private string _uri = "";
    private string _database = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewMySqlDatabaseAsync("plan");
        var builder = new MySqlConnectionStringBuilder(_connectionString);
        _database = builder.Database;
        _uri = $"mysql://{Uri.EscapeDataString(builder.UserID)}:{Uri.EscapeDataString(builder.Password)}@{builder.Server}:{builder.Port}/{builder.Database}";
        await ExecuteAsync("""
            CREATE TABLE parent (id INT PRIMARY KEY);
            CREATE TABLE orders (
              id INT PRIMARY KEY AUTO_INCREMENT, a INT NOT NULL DEFAULT 0, b VARCHAR(20), c TEXT, p INT,
              note VARCHAR(50) NOT NULL, KEY ix_a (a)) ENGINE=InnoDB;
            INSERT INTO parent VALUES (1), (2);
            INSERT INTO orders (a, b, c, p, note) VALUES (1, 'x', 'long text', 1, 'n1'), (2, 'y', NULL, 2, 'n2'), (3, NULL, 'z', NULL, 'n3');
            """);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Theory]
    [InlineData("ADD COLUMN x INT", "instant", "run-natively", false)]
    [InlineData("ADD COLUMN x INT NOT NULL DEFAULT 5", "instant", "run-natively", false)]
    [InlineData("ADD COLUMN x CHAR(36) DEFAULT (UUID())", "blocking", "online-rebuild", true)]
    [InlineData("DROP COLUMN c", "instant", "expand-contract", false)]
    [InlineData("RENAME COLUMN b TO bb", "instant", "expand-contract", false)]
    [InlineData("CHANGE COLUMN b b2 VARCHAR(20)", "instant", "expand-contract", false)]
    [InlineData("MODIFY a BIGINT NOT NULL DEFAULT 0", "blocking", "online-rebuild", true)]
    [InlineData("MODIFY a SMALLINT NOT NULL DEFAULT 0", "blocking", "expand-contract", true)]
    [InlineData("MODIFY b VARCHAR(40)", "instant", "run-natively", false)]
    [InlineData("MODIFY p INT NOT NULL", "online", "online-rebuild", true)]
    [InlineData("ADD CONSTRAINT ck_a CHECK (a >= 0)", "blocking", "online-rebuild", true)]
    [InlineData("ADD CONSTRAINT fk_p FOREIGN KEY (p) REFERENCES parent (id)", "blocking", "online-rebuild", true)]
    [InlineData("ADD INDEX ix_b (b)", "online", "run-natively", false)]
    [InlineData("CREATE INDEX ix_b ON orders (b)", "online", "run-natively", false)]
    [InlineData("ADD UNIQUE KEY uq_note (note)", "online", "run-natively", false)]
    [InlineData("DROP PRIMARY KEY, ADD PRIMARY KEY (id, a)", "online", "online-rebuild", true)]
    [InlineData("CONVERT TO CHARACTER SET utf8mb4", "blocking", "online-rebuild", true)]
    [InlineData("ENGINE=InnoDB", "online", "online-rebuild", true)]
    [InlineData("ENGINE=MyISAM", "blocking", "online-rebuild", true)]
    [InlineData("ROW_FORMAT=COMPRESSED", "online", "online-rebuild", true)]
    [InlineData("RENAME TO orders_v2", "instant", "expand-contract", false)]
    public async Task Plans_each_alter_form_from_the_servers_own_answer(string alter, string risk, string strategy, bool rewrites)
    {
        string before = await TableDefinitionAsync();

        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", alter, "--json");

        Assert.True(result.ExitCode is 0 or 2 or 3, result.Stderr);
        Assert.Equal(risk, result.Json.GetProperty("risk").GetString());
        Assert.Equal(strategy, result.Json.GetProperty("strategy").GetString());
        Assert.Equal(rewrites, result.Json.GetProperty("server").GetProperty("rewritesTable").GetBoolean());
        Assert.Equal(strategy switch { "online-rebuild" => 2, "expand-contract" => 3, _ => 0 }, result.ExitCode);
        Assert.NotEmpty(result.Json.GetProperty("steps").EnumerateArray());
        // What `osc alter` runs natively instead of rebuilding: every instant change but the table's rename, named with its algorithm.
        string? instant = result.Json.TryGetProperty("instantStatement", out System.Text.Json.JsonElement statement) ? statement.GetString() : null;
        Assert.Equal(risk == "instant" && !alter.StartsWith("RENAME TO", StringComparison.Ordinal), instant is not null);
        Assert.True(instant is null || instant.EndsWith("ALGORITHM=INSTANT", StringComparison.Ordinal), instant);
        await AssertUntouchedAsync(before);
    }

    [Fact]
    public async Task The_human_output_names_the_verdict_lock_and_command()
    {
        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", "MODIFY a BIGINT NOT NULL DEFAULT 0");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("BLOCKING", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("ALGORITHM=COPY", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("osc alter mysql://", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(":" + new MySqlConnectionStringBuilder(_connectionString).Password + "@", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_human_output_of_a_catalog_change_offers_osc_alter_to_run_it()
    {
        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", "ADD COLUMN x INT");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("Or let osc alter run it", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("--alter \"ADD COLUMN x INT\" --execute", result.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ADD COLUMN x INT", "instant", "run-natively", 0)]
    [InlineData("ADD INDEX ix_v (v)", "online", "run-natively", 0)]
    [InlineData("MODIFY v BIGINT", "blocking", "maintenance-window", 4)]
    public async Task A_system_versioned_table_is_planned_never_sent_to_an_online_rebuild(string alter, string risk, string strategy, int exitCode)
    {
        await ExecuteAsync("CREATE TABLE sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING; INSERT INTO sv VALUES (1, 1); UPDATE sv SET v = 2 WHERE id = 1");
        string before = await VersionedDefinitionAsync();

        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "sv", "--alter", alter, "--json");

        Assert.Equal(exitCode, result.ExitCode);
        Assert.Equal(risk, result.Json.GetProperty("risk").GetString());
        Assert.Equal(strategy, result.Json.GetProperty("strategy").GetString());
        Assert.Contains(result.Json.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("system-versioned", StringComparison.Ordinal));

        // The step's SQL is what the server needs for this table: it runs as given, and the history stays.
        string sql = Assert.Single(result.Json.GetProperty("steps").EnumerateArray()).GetProperty("sql").GetString()!;
        Assert.Contains("system_versioning_alter_history = KEEP", sql, StringComparison.Ordinal);
        Assert.Equal(before, await VersionedDefinitionAsync());
        Assert.Equal(0L, await CountPlanCopiesAsync());
        await ExecuteAsync(sql);
        Assert.Equal(2L, await ScalarAsync<long>("SELECT COUNT(*) FROM sv FOR SYSTEM_TIME ALL"));
    }

    [Fact]
    public async Task A_rename_spells_out_expand_contract_with_sql_that_runs()
    {
        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", "RENAME COLUMN b TO bb", "--json");

        var phases = result.Json.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("phase").GetString()).ToList();
        Assert.Equal(["expand", "dual-write", "backfill", "verify", "switch reads", "contract"], phases);

        // The expand step's SQL is real: it runs, and adds the column.
        string expand = result.Json.GetProperty("steps")[0].GetProperty("sql").GetString()!;
        await ExecuteAsync(expand);
        Assert.Equal(1L, await ScalarAsync<long>($"SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{_database}' AND TABLE_NAME = 'orders' AND COLUMN_NAME = 'bb'"));
    }

    [Fact]
    public async Task A_leftover_copy_from_a_killed_run_is_replaced_and_removed()
    {
        await ExecuteAsync("CREATE TABLE _orders_osc_plan LIKE orders");

        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", "ADD COLUMN x INT");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(0L, await CountPlanCopiesAsync());
    }

    [Theory]
    [InlineData("ADD COLUMN x NOSUCHTYPE", "The server rejects the ALTER")]
    [InlineData("DROP COLUMN nosuchcolumn", "The server rejects the ALTER")]
    [InlineData("ALTER TABLE customers ADD COLUMN x INT", "names table customers")]
    [InlineData("ADD COLUMN x INT; DROP TABLE orders", "more than one statement")]
    [InlineData("", "empty")]
    [InlineData("DELETE FROM orders", "DELETE statement")]
    public async Task Bad_alters_are_refused_with_the_reason_and_change_nothing(string alter, string expected)
    {
        string before = await TableDefinitionAsync();

        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", alter);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.Contains("fix:", result.Stderr, StringComparison.Ordinal);
        await AssertUntouchedAsync(before);
    }

    [Fact]
    public async Task A_wrong_password_is_named()
    {
        string uri = _uri.Replace(":" + Uri.EscapeDataString(new MySqlConnectionStringBuilder(_connectionString).Password) + "@", ":wrong@", StringComparison.Ordinal);
        OscRunner.Result result = await OscRunner.RunAsync("plan", uri, "--table", "orders", "--alter", "ADD COLUMN x INT");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Access denied", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_database_is_named()
    {
        string uri = _uri[.._uri.LastIndexOf('/')] + "/no_such_db";
        OscRunner.Result result = await OscRunner.RunAsync("plan", uri, "--table", "orders", "--alter", "ADD COLUMN x INT");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("'no_such_db' does not exist", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_table_is_named()
    {
        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "no_such_table", "--alter", "ADD COLUMN x INT");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"Table {_database}.no_such_table does not exist", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Gh_ost_style_flags_and_a_password_from_the_environment_work_too()
    {
        var builder = new MySqlConnectionStringBuilder(_connectionString);
        Environment.SetEnvironmentVariable("MYSQL_PWD", builder.Password);
        try
        {
            OscRunner.Result result = await OscRunner.RunAsync("plan", "--engine", "mysql", "--host", builder.Server, "--port", builder.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--user", builder.UserID, "--table", $"{_database}.orders", "--alter", "ADD COLUMN x INT");
            Assert.Equal(0, result.ExitCode);
            Assert.Contains("INSTANT", result.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MYSQL_PWD", null);
        }
    }

    private async Task AssertUntouchedAsync(string before)
    {
        Assert.Equal(before, await TableDefinitionAsync());
        Assert.Equal(0L, await CountPlanCopiesAsync());
    }

    private async Task<long> CountPlanCopiesAsync() =>
        await ScalarAsync<long>($"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{_database}' AND TABLE_NAME LIKE '%osc\\_plan%'");

    private Task<string> VersionedDefinitionAsync() =>
        TableDefinitionAsync("sv", "SELECT GROUP_CONCAT(CONCAT_WS('|', id, v) ORDER BY id, v) FROM sv FOR SYSTEM_TIME ALL");

    /// <summary>The table's definition and a digest of its rows (<paramref name="rowsSql"/>): what "untouched" compares.</summary>
    private async Task<string> TableDefinitionAsync(string table = "orders",
        string rowsSql = "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('|', id, a, b, c, p, note))), 0)) FROM orders")
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand($"SHOW CREATE TABLE {table}", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        string definition = reader.GetString(1);
        await reader.CloseAsync();
        await using var rows = new MySqlCommand(rowsSql, connection);
        return definition + "\n" + await rows.ExecuteScalarAsync();
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new MySqlConnection(_connectionString + ";AllowUserVariables=true");
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        return (T)Convert.ChangeType((await command.ExecuteScalarAsync())!, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }
}
