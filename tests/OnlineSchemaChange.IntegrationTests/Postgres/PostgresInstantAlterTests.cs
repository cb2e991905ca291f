using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>
/// `osc alter` on PostgreSQL for an ALTER that is a catalog change (no rewrite, scan or index build on the planner's
/// empty copy): run natively in a transaction under lock_timeout, no slot, publication or shadow; others rebuild.
/// </summary>
[Collection("servers")]
public sealed class PostgresInstantAlterTests(ServersFixture servers, ITestOutputHelper output)
{
    private const string FileNode = "SELECT relfilenode FROM pg_class WHERE oid = 't'::regclass";
    private const string Digest = "SELECT count(*) || ':' || sum(hashtext(id || '|' || k || '|' || note)) FROM t";

    [Fact]
    public async Task A_catalog_change_runs_natively_without_a_slot_or_a_shadow_and_keeps_the_table_files()
    {
        (string connectionString, string uri) = await DatabaseAsync();
        string fileBefore = await ScalarAsync(connectionString, FileNode);
        string before = await ScalarAsync(connectionString, Digest);
        string[] run = ["alter", uri, "--table", "t", "--alter", "ADD COLUMN flag int NOT NULL DEFAULT 3", "--json"];

        OscRunner.Result dryRun = await OscRunner.RunAsync(run);
        Assert.True(dryRun.ExitCode == 0, dryRun.Stderr);
        Assert.Equal("instant", dryRun.Json.GetProperty("mode").GetString());
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'flag'"));

        OscRunner.Result executed = await OscRunner.RunAsync([.. run, "--execute"]);

        Assert.True(executed.ExitCode == 0, executed.Stderr);
        JsonElement done = LiveOscRun.ParseAll(executed.Stdout)[^1];
        Assert.Equal("instant", done.GetProperty("mode").GetString());
        Assert.Equal(1, done.GetProperty("cutOverAttempts").GetInt32());
        Assert.Equal("2000", await ScalarAsync(connectionString, "SELECT count(*) FROM t WHERE flag = 3"));
        Assert.Equal(fileBefore, await ScalarAsync(connectionString, FileNode));
        Assert.Equal(before, await ScalarAsync(connectionString, Digest));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE '%osc%'"));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Fact]
    public async Task A_change_that_rewrites_the_table_and_instant_off_take_the_online_rebuild()
    {
        (string connectionString, string uri) = await DatabaseAsync();

        OscRunner.Result volatileDefault = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD COLUMN r double precision DEFAULT random()", "--json");
        OscRunner.Result off = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD COLUMN flag int NOT NULL DEFAULT 3", "--json", "--instant", "off");

        Assert.True(volatileDefault.ExitCode == 0, volatileDefault.Stderr);
        Assert.Equal("rebuild", volatileDefault.Json.GetProperty("mode").GetString());
        Assert.True(off.ExitCode == 0, off.Stderr);
        Assert.Equal("rebuild", off.Json.GetProperty("mode").GetString());
        Assert.Equal("t_osc_new", off.Json.GetProperty("shadowTable").GetString());
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Fact]
    public async Task Behind_a_long_transaction_each_attempt_gives_up_within_the_lock_timeout_naming_it_and_nothing_changes()
    {
        (string connectionString, string uri) = await DatabaseAsync();
        await using var longTransaction = new NpgsqlConnection(connectionString);
        await longTransaction.OpenAsync();
        NpgsqlTransaction transaction = await longTransaction.BeginTransactionAsync();
        await new NpgsqlCommand("SELECT count(*) FROM t /* the long report */", longTransaction, transaction).ExecuteScalarAsync();
        string[] run = ["alter", uri, "--table", "t", "--alter", "ADD COLUMN flag int NOT NULL DEFAULT 3", "--execute", "--cut-over-lock-timeout-seconds", "1", "--cut-over-attempts", "2"];

        using var stop = new CancellationTokenSource();
        Task<TimeSpan> application = SlowestReadAsync(connectionString, stop.Token);
        OscRunner.Result refused = await OscRunner.RunAsync(run);
        await stop.CancelAsync();
        TimeSpan slowest = await application;
        output.WriteLine($"slowest read {slowest.TotalMilliseconds:0} ms");
        output.WriteLine(refused.Stderr);

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("did not get the table's lock in 2 attempts", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains($"blocked by pid {longTransaction.ProcessID} ", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("the long report", refused.Stderr, StringComparison.Ordinal);
        // Queued behind the ALTER's lock request (so the measure means something), never for much longer than its timeout.
        Assert.InRange(slowest, TimeSpan.FromMilliseconds(400), TimeSpan.FromMilliseconds(1750));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'flag'"));

        await transaction.RollbackAsync();
        OscRunner.Result ran = await OscRunner.RunAsync(run);
        Assert.True(ran.ExitCode == 0, ran.Stderr);
        Assert.Equal("2000", await ScalarAsync(connectionString, "SELECT count(*) FROM t WHERE flag = 3"));
    }

    private async Task<(string ConnectionString, string Uri)> DatabaseAsync()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("instant");
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, note text);
            INSERT INTO t SELECT g, g % 97, 'row-' || g FROM generate_series(1, 2000) g;
            """);
        return (connectionString, OscUri(connectionString));
    }
}
