using System.Text.Json;
using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>The JSON lines of `osc alter --execute --json`, as a script reads them: one object per line, phases in order.</summary>
[Collection("servers")]
public sealed class MySqlAlterJsonTests(ServersFixture servers)
{
    [Fact]
    public async Task Every_stdout_line_is_one_json_event_and_the_phases_come_in_order()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "alter_json", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL);
            INSERT INTO t SELECT seq, seq FROM seq_1_to_2000;
            """);

        OscRunner.Result result = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json", "--no-replica-discovery");

        Assert.True(result.ExitCode == 0, result.Stderr);
        var events = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.Equal(["copying", "catching up", "verifying", "cutting over", "done"],
            events.Where(e => e.GetProperty("event").GetString() == "phase").Select(e => e.GetProperty("phase").GetString()!));
        var progress = events.Where(e => e.GetProperty("event").GetString() == "progress").ToList();
        Assert.NotEmpty(progress);
        Assert.All(progress, p =>
        {
            foreach (string field in new[] { "state", "rowsCopied", "estimatedRows", "changesApplied", "backlog", "elapsedSeconds" })
            {
                Assert.True(p.TryGetProperty(field, out _), $"progress has {field}: {p}");
            }
        });
        Assert.Equal(2000, progress[^1].GetProperty("rowsCopied").GetInt64());
        var elapsed = events.Where(e => e.TryGetProperty("elapsedSeconds", out _)).Select(e => e.GetProperty("elapsedSeconds").GetDouble()).ToList();
        Assert.Equal(elapsed.Order(), elapsed);

        JsonElement done = events[^1];
        Assert.Equal("done", done.GetProperty("event").GetString());
        Assert.Equal(2000, done.GetProperty("rowsCopied").GetInt64());
        Assert.Equal(2000, done.GetProperty("verifiedRows").GetInt64());
        Assert.Equal("t_osc_old", done.GetProperty("oldTable").GetString());
        foreach (string field in new[] { "totalSeconds", "changesApplied", "writesBlockedMillis", "cutOverAttempts" })
        {
            Assert.True(done.TryGetProperty(field, out _), $"done has {field}");
        }

        // Verification's READ lock held writes too, for less than the whole run.
        Assert.InRange(done.GetProperty("verificationWritesBlockedMillis").GetDouble(), 0.01, done.GetProperty("totalSeconds").GetDouble() * 1000);

        // Where the swap's hold went, step by step, and how long its lock request waited.
        Assert.True(done.GetProperty("lockWaitMillis").GetDouble() >= 0);
        var steps = done.GetProperty("writesBlockedSteps").EnumerateArray().ToList();
        Assert.Equal(["binlog position read", "drain: shadow caught up", "rename queued", "sentry dropped", "unlocked"],
            steps.Select(step => step.GetProperty("step").GetString()!));
        Assert.True(steps.Sum(step => step.GetProperty("millis").GetDouble()) <= done.GetProperty("writesBlockedMillis").GetDouble() + 0.5,
            $"the steps add up to no more than the hold: {done}");
    }

    // Under innodb_autoinc_lock_mode 0 or 1 (MariaDB's default), every INSERT ... SELECT into a table with an
    // AUTO_INCREMENT column holds its AUTO-INC lock to the end: parallel chunks would only queue. The run says so.
    [Theory]
    [InlineData(" AUTO_INCREMENT")]
    [InlineData("")]
    public async Task A_table_with_an_auto_increment_column_is_copied_by_one_worker_when_the_lock_mode_serialises_inserts(string autoIncrement)
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "alter_workers", $"""
            CREATE TABLE t (id INT PRIMARY KEY{autoIncrement}, k INT NOT NULL);
            INSERT INTO t SELECT seq, seq FROM seq_1_to_2000;
            """);
        bool serialised = long.Parse(await MySqlTestSql.ScalarAsync(db.ConnectionString, "SELECT @@innodb_autoinc_lock_mode"), System.Globalization.CultureInfo.InvariantCulture) < 2
                          && autoIncrement.Length > 0;
        string[] run = ["alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--json", "--no-replica-discovery", "--workers", "4"];

        OscRunner.Result dryRun = await OscRunner.RunAsync(run);
        OscRunner.Result executed = await OscRunner.RunAsync([.. run, "--execute"]);

        Assert.True(dryRun.ExitCode == 0, dryRun.Stderr);
        Assert.True(executed.ExitCode == 0, executed.Stderr);
        JsonElement plan = JsonDocument.Parse(dryRun.Stdout).RootElement;
        JsonElement done = JsonDocument.Parse(executed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]).RootElement;
        foreach (JsonElement notes in new[] { plan.GetProperty("notes"), done.GetProperty("notes") })
        {
            string[] said = notes.EnumerateArray().Select(n => n.GetString()!).Where(n => n.StartsWith("Copied with one worker instead of 4", StringComparison.Ordinal)).ToArray();
            Assert.Equal(serialised ? 1 : 0, said.Length);
            Assert.All(said, n => Assert.Contains("AUTO-INC lock (column id)", n, StringComparison.Ordinal));
        }

        Assert.Equal("bigint(20)", await MySqlTestSql.ScalarAsync(db.ConnectionString,
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
    }
}
