using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>Rows that do not fit the new definition: refused with a clear error, nothing of osc's left behind.</summary>
[Collection("servers")]
public sealed class PostgresDataFitTests(ServersFixture servers, ITestOutputHelper output)
{
    [Theory]
    [InlineData("ALTER COLUMN c TYPE varchar(5)", "value too long for type character varying(5)")]
    [InlineData("ALTER COLUMN c TYPE int USING c::int", "invalid input syntax for type integer")]
    [InlineData("ADD CONSTRAINT small_k CHECK (k < 50)", "violates check constraint")]
    public async Task An_alter_the_rows_do_not_fit_stops_with_a_clear_error_and_leaves_nothing(string alter, string expected)
    {
        (string connectionString, string uri) = await DatabaseAsync();
        // The rebuild's copy: with --native auto the CHECK would be validated in place instead (PostgresNativeAlterTests).
        OscRunner.Result result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", alter, "--execute", "--native", "off");

        output.WriteLine(result.Stderr);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("does not fit the data", result.Stderr, StringComparison.Ordinal);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unexpected failure", result.Stderr, StringComparison.Ordinal);
        await AssertNothingOfOscAsync(connectionString);
    }

    [Fact]
    public async Task A_row_the_application_writes_that_does_not_fit_stops_the_run_before_the_swap()
    {
        (string connectionString, string uri) = await DatabaseAsync();
        using var flag = new FlagFile("fit");
        OscRunner.Result result;
        // Held before the swap, the copy done: the row reaches the shadow through the replay alone.
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", "ALTER COLUMN c TYPE varchar(10)", "--execute", "--json",
            "--postpone-cut-over-flag-file", flag.Path);
        await run.WaitForEventAsync(e => e.TryGetProperty("phase", out JsonElement p) && p.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
            TimeSpan.FromSeconds(60), "the flag file to postpone the swap");
        await ExecuteAsync(connectionString, "UPDATE t SET c = 'a value longer than ten characters' WHERE id = 1000");
        flag.Lift();
        result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));

        output.WriteLine(result.Stderr);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("does not fit the data: the server refused a row the application wrote during the migration", result.Stderr, StringComparison.Ordinal);
        await AssertNothingOfOscAsync(connectionString);
    }

    private static async Task AssertNothingOfOscAsync(string connectionString)
    {
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT coalesce(string_agg(relname, ','), '') FROM pg_class WHERE relname LIKE 't\\_osc\\_%' AND relkind = 'r'"));
        Assert.Equal("text", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'c'"));
    }

    // Values "row-2" to "row-2000": from "row-10" on they are longer than 5 characters, and all fit in 10.
    private async Task<(string ConnectionString, string Uri)> DatabaseAsync()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("fit");
        string uri = PgSql.OscUri(connectionString);
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, c text);
            INSERT INTO t SELECT g, g % 97, 'row-' || g FROM generate_series(2, 2000) g;
            """);
        return (connectionString, uri);
    }
}
