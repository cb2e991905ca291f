using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>Someone else changes the original while osc migrates it: the change must never be lost without a word.</summary>
[Collection("servers")]
public sealed class PostgresTableChangeTests(ServersFixture servers, ITestOutputHelper output)
{
    [Theory]
    [InlineData("CREATE INDEX t_c ON t (c)", "indexes were:")]
    [InlineData("ALTER TABLE t ALTER COLUMN c TYPE varchar(50)", "columns were:")]
    [InlineData("ALTER TABLE t ADD CONSTRAINT k_positive CHECK (k >= 0)", "constraints were:")]
    [InlineData("ALTER TABLE t ADD COLUMN extra int", "gained a column extra")]
    public async Task A_change_to_the_table_mid_run_stops_it_before_the_swap_and_removes_everything_of_osc_s(string change, string expected)
    {
        (string connectionString, string uri) = await DatabaseAsync();
        OscRunner.Result result = await RunWithChangeAsync(connectionString, uri, change);

        output.WriteLine(result.Stderr);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("during the migration", result.Stderr, StringComparison.Ordinal);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unexpected failure", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT coalesce(string_agg(relname, ','), '') FROM pg_class WHERE relname LIKE 't\\_osc\\_%' AND relkind = 'r'"));
        // Never swapped: k is still an integer.
        Assert.Equal("integer", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
    }

    [Fact]
    public async Task A_statement_that_changes_nothing_the_new_table_carries_lets_the_run_finish()
    {
        (string connectionString, string uri) = await DatabaseAsync();
        OscRunner.Result result = await RunWithChangeAsync(connectionString, uri, "ANALYZE t; ALTER TABLE t SET (autovacuum_vacuum_scale_factor = 0.05)");

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("bigint", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
        Assert.Equal("2001", await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
    }

    /// <summary>Holds the copy with the flag file, makes the change and one write after it, then lets the run go on.</summary>
    private static async Task<OscRunner.Result> RunWithChangeAsync(string connectionString, string uri, string change)
    {
        using var flag = new FlagFile("table-change");
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute", "--json", "--throttle-flag-file", flag.Path);
        await run.WaitForThrottledAsync("flag file", TimeSpan.FromSeconds(60));
        await ExecuteAsync(connectionString, change);
        await ExecuteAsync(connectionString, "INSERT INTO t (id, k, c) VALUES (5001, 1, 'after the change')");
        flag.Lift();
        return await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));
    }

    private async Task<(string ConnectionString, string Uri)> DatabaseAsync()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("table_change");
        string uri = PgSql.OscUri(connectionString);
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, c text);
            INSERT INTO t SELECT g, g % 97, 'row-' || g FROM generate_series(1, 2000) g;
            """);
        return (connectionString, uri);
    }
}
