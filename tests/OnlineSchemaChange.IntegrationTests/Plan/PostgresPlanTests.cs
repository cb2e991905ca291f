using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.Plan;

/// <summary>`osc plan` against a real PostgreSQL 15: rewrite, scan and lock as the server reports them, nothing left behind.</summary>
[Collection("servers")]
public sealed class PostgresPlanTests(ServersFixture servers) : IAsyncLifetime
{
    private string _connectionString = "";
    private string _uri = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewPostgresDatabaseAsync("plan");
        var builder = new NpgsqlConnectionStringBuilder(_connectionString);
        _uri = $"postgres://{Uri.EscapeDataString(builder.Username!)}:{Uri.EscapeDataString(builder.Password!)}@{builder.Host}:{builder.Port}/{builder.Database}";
        await ExecuteAsync("""
            CREATE TABLE parent (id int PRIMARY KEY);
            CREATE TABLE orders (id serial PRIMARY KEY, a int NOT NULL DEFAULT 0, b varchar(20), c text, p int, note text NOT NULL DEFAULT '');
            CREATE INDEX orders_a ON orders (a);
            INSERT INTO parent VALUES (1), (2);
            INSERT INTO orders (a, b, c, p, note) VALUES (1, 'x', 'long', 1, 'n1'), (2, 'y', NULL, 2, 'n2'), (3, NULL, 'z', NULL, 'n3');
            """);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Theory]
    [InlineData("ADD COLUMN x int", "instant", "run-natively", false, "ACCESS EXCLUSIVE")]
    [InlineData("ADD COLUMN x int NOT NULL DEFAULT 5", "instant", "run-natively", false, "ACCESS EXCLUSIVE")]
    [InlineData("ADD COLUMN x float8 DEFAULT random()", "blocking", "online-rebuild", true, "ACCESS EXCLUSIVE")]
    [InlineData("DROP COLUMN c", "instant", "expand-contract", false, "ACCESS EXCLUSIVE")]
    [InlineData("RENAME COLUMN b TO bb", "instant", "expand-contract", false, "ACCESS EXCLUSIVE")]
    [InlineData("ALTER COLUMN a TYPE bigint", "blocking", "online-rebuild", true, "ACCESS EXCLUSIVE")]
    [InlineData("ALTER COLUMN a TYPE smallint", "blocking", "expand-contract", true, "ACCESS EXCLUSIVE")]
    [InlineData("ALTER COLUMN b TYPE varchar(40)", "instant", "run-natively", false, "ACCESS EXCLUSIVE")]
    [InlineData("ALTER COLUMN p SET NOT NULL", "blocking", "run-safe-variant", false, "ACCESS EXCLUSIVE")]
    [InlineData("ADD CONSTRAINT ck_a CHECK (a >= 0)", "blocking", "run-safe-variant", false, "ACCESS EXCLUSIVE")]
    [InlineData("ADD CONSTRAINT fk_p FOREIGN KEY (p) REFERENCES parent (id)", "blocking", "run-safe-variant", false, "SHARE ROW EXCLUSIVE")]
    [InlineData("CREATE INDEX ix_b ON orders (b)", "blocking", "run-safe-variant", false, "SHARE:")]
    [InlineData("CREATE INDEX CONCURRENTLY ix_b ON orders (b)", "online", "run-natively", false, "SHARE UPDATE EXCLUSIVE")]
    [InlineData("ADD CONSTRAINT uq_note UNIQUE (note)", "blocking", "run-safe-variant", false, "ACCESS EXCLUSIVE")]
    [InlineData("DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, a)", "blocking", "run-safe-variant", false, "ACCESS EXCLUSIVE")]
    [InlineData("ALTER COLUMN c TYPE text COLLATE \"C\"", "instant", "run-natively", false, "ACCESS EXCLUSIVE")]
    [InlineData("SET (fillfactor = 70)", "instant", "run-natively", false, "SHARE UPDATE EXCLUSIVE")]
    [InlineData("SET UNLOGGED", "blocking", "online-rebuild", true, "ACCESS EXCLUSIVE")]
    [InlineData("RENAME TO orders_v2", "instant", "expand-contract", false, "ACCESS EXCLUSIVE")]
    public async Task Plans_each_alter_form_from_the_servers_own_answer(string alter, string risk, string strategy, bool rewrites, string lockName)
    {
        string before = await TableDefinitionAsync();

        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", alter, "--json");

        Assert.True(result.ExitCode is 0 or 2 or 3, result.Stderr);
        Assert.Equal(risk, result.Json.GetProperty("risk").GetString());
        Assert.Equal(strategy, result.Json.GetProperty("strategy").GetString());
        Assert.Equal(rewrites, result.Json.GetProperty("server").GetProperty("rewritesTable").GetBoolean());
        Assert.StartsWith(lockName, result.Json.GetProperty("server").GetProperty("lock").GetString(), StringComparison.Ordinal);
        Assert.NotEmpty(result.Json.GetProperty("steps").EnumerateArray());
        // What `osc alter` runs natively instead of rebuilding: every catalog-only change but the table's rename.
        Assert.Equal(risk == "instant" && !alter.StartsWith("RENAME TO", StringComparison.Ordinal),
            result.Json.TryGetProperty("instantStatement", out _));
        await AssertUntouchedAsync(before);
    }

    private const string Partitioned = "CREATE TABLE pt (id int, v int, PRIMARY KEY (id)) PARTITION BY RANGE (id); CREATE TABLE pt_1 PARTITION OF pt FOR VALUES FROM (0) TO (100)";
    private const string Inheriting = "CREATE TABLE pt (id int PRIMARY KEY, v int); CREATE TABLE pt_1 (w int) INHERITS (pt)";

    [Theory]
    [InlineData(Partitioned, "pt", "ALTER COLUMN v TYPE bigint", "partitioned table", "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pt_1'::regclass AND attname = 'v'", "bigint")]
    [InlineData(Partitioned, "pt_1", "SET UNLOGGED", "partition of a partitioned table", "SELECT relpersistence::text FROM pg_class WHERE oid = 'pt_1'::regclass", "u")]
    [InlineData(Inheriting, "pt", "ALTER COLUMN v TYPE bigint", "inheritance", "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pt_1'::regclass AND attname = 'v'", "bigint")]
    [InlineData(Inheriting, "pt_1", "ALTER COLUMN w TYPE bigint", "inheritance", "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pt_1'::regclass AND attname = 'w'", "bigint")]
    public async Task A_table_osc_cannot_rebuild_is_never_sent_to_an_online_rebuild(string setup, string table, string rewriting, string reason, string check, string changed)
    {
        await ExecuteAsync(setup + "; INSERT INTO pt (id, v) VALUES (1, 1), (2, 2)");

        OscRunner.Result rewrite = await OscRunner.RunAsync("plan", _uri, "--table", table, "--alter", rewriting, "--json");
        OscRunner.Result instant = await OscRunner.RunAsync("plan", _uri, "--table", table, "--alter", "ALTER COLUMN v SET STATISTICS 500", "--json");

        Assert.Equal(4, rewrite.ExitCode);
        Assert.Equal("maintenance-window", rewrite.Json.GetProperty("strategy").GetString());
        Assert.Contains(rewrite.Json.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains(reason, StringComparison.Ordinal));
        Assert.Equal(0, instant.ExitCode);
        Assert.Equal("run-natively", instant.Json.GetProperty("strategy").GetString());
        // Planned on a plain copy, while the real ALTER recurses: `osc alter` does not run it natively for the operator.
        Assert.False(instant.Json.TryGetProperty("instantStatement", out _));

        // osc alter refuses the same table for the same reason.
        OscRunner.Result alter = await OscRunner.RunAsync("alter", _uri, "--table", table, "--alter", rewriting);
        Assert.Equal(1, alter.ExitCode);
        Assert.Contains(reason, alter.Stderr, StringComparison.Ordinal);

        // The step's SQL runs as given and makes the change.
        await ExecuteAsync(Assert.Single(rewrite.Json.GetProperty("steps").EnumerateArray()).GetProperty("sql").GetString()!);
        Assert.Equal(changed, await ScalarAsync<string>(check));
    }

    [Fact]
    public async Task A_foreign_key_reports_the_write_lock_on_the_referenced_table()
    {
        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", "ADD FOREIGN KEY (p) REFERENCES parent (id)", "--json");

        var other = Assert.Single(result.Json.GetProperty("server").GetProperty("otherTables").EnumerateArray());
        Assert.Equal("public.parent", other.GetProperty("table").GetString());
        Assert.True(other.GetProperty("blocksWrites").GetBoolean());
    }

    [Fact]
    public async Task The_safe_form_of_set_not_null_runs_and_does_the_job()
    {
        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", "ALTER COLUMN a DROP DEFAULT, ALTER COLUMN note SET NOT NULL", "--json");
        Assert.Equal(1, result.Json.GetProperty("steps").GetArrayLength() > 0 ? 1 : 0);

        OscRunner.Result notNull = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", "ALTER COLUMN b SET NOT NULL", "--json");
        await ExecuteAsync("UPDATE orders SET b = '' WHERE b IS NULL");
        foreach (var step in notNull.Json.GetProperty("steps").EnumerateArray())
        {
            await ExecuteAsync(step.GetProperty("sql").GetString()!);
        }

        Assert.True(await ScalarAsync<bool>("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'b'"));
    }

    [Theory]
    [InlineData("ADD COLUMN x nosuchtype", "The server rejects the ALTER")]
    [InlineData("DROP COLUMN nosuchcolumn", "The server rejects the ALTER")]
    [InlineData("ALTER TABLE customers ADD COLUMN x int", "names table customers")]
    [InlineData("ADD COLUMN x int; DROP TABLE orders", "more than one statement")]
    [InlineData("  ", "empty")]
    [InlineData("TRUNCATE orders", "TRUNCATE statement")]
    public async Task Bad_alters_are_refused_with_the_reason_and_change_nothing(string alter, string expected)
    {
        string before = await TableDefinitionAsync();

        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "orders", "--alter", alter);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        await AssertUntouchedAsync(before);
    }

    [Fact]
    public async Task A_wrong_password_is_named()
    {
        string password = new NpgsqlConnectionStringBuilder(_connectionString).Password!;
        string uri = _uri.Replace(":" + Uri.EscapeDataString(password) + "@", ":wrong@", StringComparison.Ordinal);
        OscRunner.Result result = await OscRunner.RunAsync("plan", uri, "--table", "orders", "--alter", "ADD COLUMN x int");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Authentication failed", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_database_is_named()
    {
        string uri = _uri[.._uri.LastIndexOf('/')] + "/no_such_db";
        OscRunner.Result result = await OscRunner.RunAsync("plan", uri, "--table", "orders", "--alter", "ADD COLUMN x int");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("'no_such_db' does not exist", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_table_is_named()
    {
        OscRunner.Result result = await OscRunner.RunAsync("plan", _uri, "--table", "no_such_table", "--alter", "ADD COLUMN x int");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Table public.no_such_table does not exist", result.Stderr, StringComparison.Ordinal);
    }

    private async Task AssertUntouchedAsync(string before)
    {
        Assert.Equal(before, await TableDefinitionAsync());
        Assert.Equal(0L, await ScalarAsync<long>("SELECT count(*) FROM pg_class WHERE relname LIKE '\\_osc\\_plan\\_%'"));
        Assert.Equal(0L, await ScalarAsync<long>("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'osc'"));
    }

    private async Task<string> TableDefinitionAsync() => await ScalarAsync<string>("""
        SELECT (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull, ', ' ORDER BY attnum)
                FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped)
            || ' | ' || (SELECT coalesce(string_agg(conname || ' ' || pg_get_constraintdef(oid), ', ' ORDER BY conname), '') FROM pg_constraint WHERE conrelid = 'orders'::regclass)
            || ' | ' || (SELECT string_agg(indexrelid::regclass::text, ', ' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 'orders'::regclass)
            || ' | ' || (SELECT relname || ' ' || relpersistence::text FROM pg_class WHERE oid = 'orders'::regclass)
            || ' | ' || (SELECT count(*) || ':' || coalesce(sum(hashtext(orders::text)), 0) FROM orders)
        """);

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
