using System.Text.Json;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>Rows that do not fit the new definition, and rows that fit only if copied exactly.</summary>
[Collection("servers")]
public sealed class MySqlDataFitTests(ServersFixture servers, ITestOutputHelper output)
{
    private const string TablesOfOsc = "SELECT COALESCE(GROUP_CONCAT(TABLE_NAME), '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'";

    [Fact]
    public async Task A_narrowing_alter_over_rows_that_do_not_fit_stops_with_a_clear_error_and_leaves_nothing()
    {
        OscTestDatabase db = await CreateAsync();
        OscRunner.Result result = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY c VARCHAR(5)", "--execute");

        output.WriteLine(result.Stderr);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("does not fit the data", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("Data too long for column 'c'", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unexpected failure", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await ScalarAsync(db.ConnectionString, TablesOfOsc));
        Assert.Equal("varchar(40)", await ColumnTypeAsync(db, "c"));
    }

    /// <summary>
    /// Under a lenient server sql_mode an INSERT truncates a value too long for its column with only a warning, and the
    /// new table would hold the cut value; osc's sessions write the shadow in strict mode whatever the server's.
    /// </summary>
    [Fact]
    public async Task Under_a_lenient_server_sql_mode_a_value_that_does_not_fit_is_refused_not_truncated()
    {
        OscTestDatabase db = await CreateAsync();
        string before = await ScalarAsync(db.ConnectionString, "SELECT @@GLOBAL.sql_mode");
        await ExecuteAsync(db.ConnectionString, "SET GLOBAL sql_mode = ''");
        OscRunner.Result result;
        try
        {
            result = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY c VARCHAR(5)", "--execute");
        }
        finally
        {
            await ExecuteAsync(db.ConnectionString, $"SET GLOBAL sql_mode = '{before}'");
        }

        output.WriteLine(result.Stderr);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("does not fit the data", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("varchar(40)", await ColumnTypeAsync(db, "c"));
        Assert.Equal("row-1000", await ScalarAsync(db.ConnectionString, "SELECT c FROM t WHERE id = 1000"));
    }

    [Fact]
    public async Task A_row_the_application_writes_that_does_not_fit_stops_the_run_before_the_swap()
    {
        OscTestDatabase db = await CreateAsync();
        using var flag = new FlagFile("fit");
        OscRunner.Result result;
        // Held before the swap, the copy done: the row reaches the shadow through the replay alone.
        LiveOscRun run = LiveOscRun.Start("alter", db.Uri, "--table", "t", "--alter", "MODIFY c VARCHAR(10)", "--execute", "--json", "--postpone-cut-over-flag-file", flag.Path);
        await run.WaitForEventAsync(e => e.TryGetProperty("phase", out JsonElement p) && p.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
            TimeSpan.FromSeconds(60), "the flag file to postpone the swap");
        await ExecuteAsync(db.ConnectionString, "UPDATE t SET c = 'a value longer than ten characters' WHERE id = 1000");
        flag.Lift();
        result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));

        output.WriteLine(result.Stderr);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("does not fit the data: the server refused a row the application wrote during the migration", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await ScalarAsync(db.ConnectionString, TablesOfOsc));
        Assert.Equal("varchar(40)", await ColumnTypeAsync(db, "c"));
    }

    /// <summary>An AUTO_INCREMENT column holding 0 (written under NO_AUTO_VALUE_ON_ZERO) keeps 0: given the next value instead, the row would be another row.</summary>
    [Fact]
    public async Task A_row_whose_auto_increment_key_is_zero_is_copied_as_zero()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fit_zero", """
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, c VARCHAR(40));
            SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO');
            INSERT INTO t VALUES (0, 'zero'), (1, 'one'), (2, 'two');
            """);
        OscRunner.Result result = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN k INT", "--execute");

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("0:zero,1:one,2:two", await ScalarAsync(db.ConnectionString, "SELECT GROUP_CONCAT(CONCAT(id, ':', c) ORDER BY id) FROM t"));
    }

    // Values "row-1" to "row-2000": from "row-10" on they are longer than 5 characters, and all fit in 10.
    private Task<OscTestDatabase> CreateAsync() => OscTestDatabase.CreateAsync(servers, "fit", """
        CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
        INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_2_to_2000;
        """);

    private static Task<string> ColumnTypeAsync(OscTestDatabase db, string column) => ScalarAsync(db.ConnectionString,
        $"SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = '{column}'");
}
