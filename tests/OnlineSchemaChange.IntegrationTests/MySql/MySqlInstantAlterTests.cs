using System.Text.Json;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// `osc alter` on an ALTER the server makes as a catalog change (`--native auto`, the default): run natively with
/// ALGORITHM=INSTANT, no shadow table, the rows untouched; `--native off` and ALTERs that rewrite take the rebuild.
/// </summary>
[Collection("servers")]
public sealed class MySqlInstantAlterTests(ServersFixture servers)
{
    private const string TableId = "SELECT TABLE_ID FROM information_schema.INNODB_SYS_TABLES WHERE NAME = CONCAT(DATABASE(), '/t')";
    private const string Digest = "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t";

    [Fact]
    public async Task An_instant_change_runs_natively_in_place_even_on_a_table_a_rebuild_would_refuse()
    {
        // A trigger: the online rebuild refuses the table; the catalog change does not need to.
        OscTestDatabase db = await TableAsync("instant_run");
        string idBefore = await ScalarAsync(db.ConnectionString, TableId);
        string before = await ScalarAsync(db.ConnectionString, Digest);

        OscRunner.Result dryRun = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN added INT NOT NULL DEFAULT 7", "--json", "--no-replica-discovery");
        Assert.True(dryRun.ExitCode == 0, dryRun.Stderr);
        Assert.Equal("instant", dryRun.Json.GetProperty("mode").GetString());
        Assert.Contains("ALGORITHM=INSTANT", dryRun.Json.GetProperty("statement").GetString(), StringComparison.Ordinal);
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'added'"));

        OscRunner.Result run = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN added INT NOT NULL DEFAULT 7", "--json", "--no-replica-discovery", "--execute");

        Assert.True(run.ExitCode == 0, run.Stderr);
        JsonElement done = LiveOscRun.ParseAll(run.Stdout)[^1];
        Assert.Equal("done", done.GetProperty("event").GetString());
        Assert.Equal("instant", done.GetProperty("mode").GetString());
        Assert.Equal(1, done.GetProperty("cutOverAttempts").GetInt32());
        Assert.Equal(0, done.GetProperty("rowsCopied").GetInt64());
        Assert.Equal("3000:7", await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', MIN(added)) FROM t WHERE added = 7"));
        // The same table, not a copy: its InnoDB id and its rows are unchanged, its trigger still there, nothing of ours left.
        Assert.Equal(idBefore, await ScalarAsync(db.ConnectionString, TableId));
        Assert.Equal(before, await ScalarAsync(db.ConnectionString, Digest));
        Assert.Equal("t_note", await ScalarAsync(db.ConnectionString, "SELECT GROUP_CONCAT(TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"));
        Assert.Equal("", await db.OscTablesAsync());
    }

    [Fact]
    public async Task Instant_off_and_an_alter_that_rewrites_take_the_online_rebuild()
    {
        OscTestDatabase db = await TableAsync("instant_off");

        OscRunner.Result off = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN added INT", "--json", "--no-replica-discovery", "--native", "off");
        OscRunner.Result rewrite = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--json", "--no-replica-discovery");

        // The rebuild's own checks ran, and refused the trigger, for both.
        Assert.Equal(1, off.ExitCode);
        Assert.Contains("trigger", off.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(1, rewrite.ExitCode);
        Assert.Contains("trigger", rewrite.Stderr, StringComparison.OrdinalIgnoreCase);

        await ExecuteAsync(db.ConnectionString, "DROP TRIGGER t_note");
        OscRunner.Result rebuild = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--json", "--no-replica-discovery");
        Assert.True(rebuild.ExitCode == 0, rebuild.Stderr);
        Assert.Equal("rebuild", rebuild.Json.GetProperty("mode").GetString());
        Assert.Equal("t_osc_new", rebuild.Json.GetProperty("shadowTable").GetString());
    }

    [Fact]
    public async Task An_instant_change_the_real_table_refuses_changes_nothing_and_is_made_by_the_online_rebuild()
    {
        // InnoDB keeps the columns an instant DROP removed in the table's metadata, and a table has room for 1017 in
        // all: the planner's empty copy has 11 and takes 20 more instantly, the real table has some 1,000 and refuses.
        string columns = string.Concat(Enumerable.Range(0, 1000).Select(i => $", c{i} INT"));
        string drops = string.Join(", ", Enumerable.Range(10, 990).Select(i => $"DROP COLUMN c{i}"));
        string adds = string.Join(", ", Enumerable.Range(0, 20).Select(i => $"ADD COLUMN n{i} INT NOT NULL DEFAULT {i}"));
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "instant_refused", $"""
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL{columns});
            INSERT INTO t (id, k) SELECT seq, seq % 97 FROM seq_1_to_2000;
            ALTER TABLE t {drops}, ALGORITHM=INSTANT;
            """);
        string before = await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k)))) FROM t");

        OscRunner.Result dryRun = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", adds, "--json", "--no-replica-discovery");
        Assert.True(dryRun.ExitCode == 0, dryRun.Stderr);
        Assert.Equal("instant", dryRun.Json.GetProperty("mode").GetString());

        OscRunner.Result run = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", adds, "--json", "--no-replica-discovery", "--execute");

        Assert.True(run.ExitCode == 0, run.Stderr);
        var events = LiveOscRun.ParseAll(run.Stdout);
        Assert.Contains(events, e => e.GetProperty("event").GetString() == "native"
                                     && e.GetProperty("state").GetString()!.Contains("rebuilding the table online instead", StringComparison.Ordinal));
        JsonElement done = events[^1];
        Assert.Equal("rebuild", done.GetProperty("mode").GetString());
        Assert.Equal(2000, done.GetProperty("rowsCopied").GetInt64());
        Assert.Equal(before, await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k)))) FROM t"));
        Assert.Equal("2000:19", await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', MAX(n19)) FROM t WHERE n0 = 0 AND n19 = 19"));
    }

    [Fact]
    public async Task An_instant_change_is_refused_while_a_migration_of_the_table_is_unfinished()
    {
        OscTestDatabase db = await TableAsync("instant_leftover");
        await ExecuteAsync(db.ConnectionString, "CREATE TABLE t_osc_new LIKE t");

        OscRunner.Result run = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN added INT", "--no-replica-discovery", "--execute");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("t_osc_new exists", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("osc cleanup", run.Stderr, StringComparison.Ordinal);
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'added'"));
    }

    [Fact]
    public async Task While_an_instant_change_waits_for_its_lock_the_table_run_lock_refuses_a_rebuild_and_another_change()
    {
        OscTestDatabase db = await TableAsync("instant_run_lock");
        await ExecuteAsync(db.ConnectionString, "DROP TRIGGER t_note");
        // An open transaction that read the table holds its metadata lock: each attempt of the ALTER times out.
        await using var reader = new MySqlConnector.MySqlConnection(db.ConnectionString);
        await reader.OpenAsync();
        await using MySqlConnector.MySqlTransaction transaction = await reader.BeginTransactionAsync();
        await new MySqlConnector.MySqlCommand("SELECT COUNT(*) FROM t", reader, transaction).ExecuteScalarAsync();

        LiveOscRun waiting = LiveOscRun.Start("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN added INT NOT NULL DEFAULT 7", "--json", "--no-replica-discovery",
            "--execute", "--cut-over-lock-timeout-seconds", "1", "--cut-over-attempts", "30");
        await waiting.WaitForEventAsync(e => e.GetProperty("event").GetString() == "native" && e.GetProperty("state").GetString()!.StartsWith("attempt 1 of 30", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the first timed-out attempt");

        OscRunner.Result rebuild = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--no-replica-discovery", "--native", "off", "--execute");
        OscRunner.Result other = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN other INT", "--no-replica-discovery", "--execute");

        // Both name the waiting run and leave nothing behind; the waiting one goes on once the transaction ends.
        Assert.Equal(1, rebuild.ExitCode);
        Assert.Contains("is in progress", rebuild.Stderr, StringComparison.Ordinal);
        Assert.Contains("osc-run.", rebuild.Stderr, StringComparison.Ordinal);
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("is in progress", other.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await db.OscTablesAsync());
        Assert.False(waiting.Completion.IsCompleted);

        await transaction.CommitAsync();
        OscRunner.Result done = await waiting.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(done.ExitCode == 0, done.Stderr);
        Assert.Equal("instant", LiveOscRun.ParseAll(done.Stdout)[^1].GetProperty("mode").GetString());
        Assert.Equal("3000:7", await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', MIN(added)) FROM t WHERE added = 7"));
        Assert.Equal("int", await ScalarAsync(db.ConnectionString, "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'other'"));
        // The lock went with the run: the next one gets it.
        OscRunner.Result after = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN other INT", "--no-replica-discovery", "--execute");
        Assert.True(after.ExitCode == 0, after.Stderr);
    }

    private async Task<OscTestDatabase> TableAsync(string prefix) => await OscTestDatabase.CreateAsync(servers, prefix, """
        CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
        INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_3000;
        CREATE TRIGGER t_note BEFORE INSERT ON t FOR EACH ROW SET NEW.c = COALESCE(NEW.c, 'from trigger');
        """);
}
