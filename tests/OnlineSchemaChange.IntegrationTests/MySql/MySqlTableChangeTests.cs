using System.Text.Json;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>Someone else changes the original while osc migrates it: the change must never be lost without a word.</summary>
[Collection("servers")]
public sealed class MySqlTableChangeTests(ServersFixture servers, ITestOutputHelper output)
{
    [Theory]
    [InlineData("ALTER TABLE t ADD COLUMN extra INT NOT NULL DEFAULT 7 AFTER id, ALGORITHM=INSTANT", "was altered during the migration")]
    [InlineData("ALTER TABLE t ADD INDEX by_c (c)", "was altered during the migration")]
    [InlineData("TRUNCATE TABLE t", "was truncated during the migration")]
    [InlineData("RENAME TABLE t TO t_elsewhere", "was dropped or renamed during the migration")]
    public async Task A_change_to_the_table_mid_run_stops_it_before_the_swap_and_removes_osc_s_tables(string change, string expected)
    {
        OscTestDatabase db = await CreateAsync();
        OscRunner.Result result = await RunWithChangeAsync(db, change);

        output.WriteLine(result.Stderr);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unexpected failure", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await ScalarAsync(db.ConnectionString,
            "SELECT COALESCE(GROUP_CONCAT(TABLE_NAME), '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'"));
        if (!change.StartsWith("RENAME", StringComparison.Ordinal))
        {
            // Never swapped: the table is the one the change left, k still an INT.
            Assert.Equal("int(11)", await ScalarAsync(db.ConnectionString,
                "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        }
    }

    [Fact]
    public async Task A_statement_that_names_the_table_but_changes_nothing_lets_the_run_finish()
    {
        OscTestDatabase db = await CreateAsync();
        OscRunner.Result result = await RunWithChangeAsync(db, "ANALYZE TABLE t");

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("bigint(20)", await ScalarAsync(db.ConnectionString,
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal("2001", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t"));
    }

    private Task<OscTestDatabase> CreateAsync() => OscTestDatabase.CreateAsync(servers, "table_change", """
        CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
        INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_2000;
        """);

    /// <summary>Holds the copy with the flag file, makes the change and one write after it, then lets the run go on.</summary>
    private static async Task<OscRunner.Result> RunWithChangeAsync(OscTestDatabase db, string change)
    {
        using var flag = new FlagFile("table-change");
        LiveOscRun run = LiveOscRun.Start("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json", "--throttle-flag-file", flag.Path);
        await run.WaitForThrottledAsync("flag file", TimeSpan.FromSeconds(60));
        await ExecuteAsync(db.ConnectionString, change);
        if (!change.StartsWith("RENAME", StringComparison.Ordinal))
        {
            await ExecuteAsync(db.ConnectionString, "INSERT INTO t (id, k, c) VALUES (5001, 1, 'after the change')");
        }

        flag.Lift();
        return await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));
    }
}
