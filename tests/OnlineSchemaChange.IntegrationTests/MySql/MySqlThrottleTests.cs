using System.Text.Json;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using OnlineSchemaChange.MySql.Copy;
using OnlineSchemaChange.MySql.Schema;
using OnlineSchemaChange.MySql.Throttle;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>Throttling on a real MariaDB primary and replica.</summary>
[Collection("servers")]
public sealed class MySqlThrottleTests(ServersFixture servers) : IAsyncLifetime
{
    private string _primary = "";
    private string _replica = "";
    private TableName _log = new(null, "");

    public async Task InitializeAsync()
    {
        _primary = await servers.NewMySqlDatabaseAsync("throttle");
        string database = new MySqlConnectionStringBuilder(_primary).Database;
        _replica = new MySqlConnectionStringBuilder(await servers.MySqlReplicaAsync()) { Database = database }.ConnectionString;
        _log = new TableName(database, "t_osc_log");
        await MySqlHeartbeat.CreateLogTableAsync(_primary, _log, CancellationToken.None);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task The_copy_pauses_while_a_replica_lags_and_resumes_when_it_catches_up()
    {
        await ExecuteAsync(_primary, """
            CREATE TABLE t (id INT PRIMARY KEY, v INT);
            INSERT INTO t SELECT seq, seq FROM seq_1_to_3000;
            CREATE TABLE t_osc_new LIKE t;
            """);
        await using var heartbeat = MySqlHeartbeat.Create(_primary, _log, TimeSpan.FromMilliseconds(100));
        heartbeat.Start();
        await using var primaryClock = new MySqlPrimaryClock(_primary);
        await using var throttler = new Throttler([MySqlThrottleSignals.ReplicaLag(primaryClock, _replica, _log, TimeSpan.FromMilliseconds(1500))],
            TimeSpan.FromMilliseconds(100), TimeProvider.System);
        // Checked here rather than by the background loop: before its first check a throttler reports no reason at all.
        await CheckUntilAsync(throttler, () => !throttler.IsThrottled, "the replica to show a fresh heartbeat");

        await ExecuteAsync(_replica, "STOP SLAVE SQL_THREAD");
        try
        {
            await CheckUntilAsync(throttler, () => throttler.Reason?.Contains("above", StringComparison.Ordinal) == true, "the lag to exceed 1500 ms");
            Assert.StartsWith("replica lag on 127.0.0.1:", throttler.Reason, StringComparison.Ordinal);
            throttler.Start();

            var columns = new[] { new TableColumn("id", false), new TableColumn("v", false) };
            var copier = new KeysetCopier(
                new MySqlCopySource(_primary, _log with { Name = "t" }, _log with { Name = "t_osc_new" }, new MySqlKeyPredicate(["id"]),
                    ColumnMapping.Build(columns, columns, new Dictionary<string, string>())),
                new ChunkSizer(TimeSpan.FromMilliseconds(50), initialRows: 500, minRows: 500, maxRows: 500), throttler, workers: 2);
            Task copy = copier.RunAsync(null, CancellationToken.None);
            await Task.Delay(1000);
            Assert.Equal(0, copier.RowsCopied);

            await ExecuteAsync(_replica, "START SLAVE SQL_THREAD");
            await copy.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(3000, copier.RowsCopied);
            Assert.False(throttler.IsThrottled);
        }
        finally
        {
            await ExecuteAsync(_replica, "START SLAVE SQL_THREAD");
        }
    }

    [Fact]
    public async Task Heartbeats_share_one_session_which_a_killed_beat_replaces_and_disposal_closes()
    {
        // Unpooled, as osc connects: a closed connection ends its session, so the list shows only live ones.
        string plain = new MySqlConnectionStringBuilder(_primary) { Pooling = false }.ConnectionString;
        await MySqlConnection.ClearAllPoolsAsync();
        string database = new MySqlConnectionStringBuilder(_primary).Database;
        string others = $"FROM information_schema.PROCESSLIST WHERE DB = '{database}' AND ID <> CONNECTION_ID()";
        var heartbeat = MySqlHeartbeat.Create(plain, _log, TimeSpan.FromSeconds(10));
        try
        {
            for (int beat = 0; beat < 3; beat++)
            {
                await heartbeat.WriteAsync(CancellationToken.None);
            }

            await SessionsBecomeAsync(plain, $"SELECT COUNT(*) {others}", "1");

            // A session the server ends (an operator's KILL, a restart) fails one beat; the next opens another.
            string id = await ScalarAsync(plain, $"SELECT ID {others}");
            await ExecuteAsync(plain, $"KILL CONNECTION {id}");
            await Assert.ThrowsAnyAsync<Exception>(() => heartbeat.WriteAsync(CancellationToken.None));
            await heartbeat.WriteAsync(CancellationToken.None);
            Assert.Equal(4, heartbeat.Writes);
            // The server removes an ended session from its list a moment after the connection closes.
            await SessionsBecomeAsync(plain, $"SELECT COUNT(*) {others}", "1");
            Assert.NotEqual(id, await ScalarAsync(plain, $"SELECT ID {others}"));
        }
        finally
        {
            await heartbeat.DisposeAsync();
        }

        await SessionsBecomeAsync(plain, $"SELECT COUNT(*) {others}", "0");
    }

    private static async Task SessionsBecomeAsync(string connectionString, string countSql, string expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string count;
        while ((count = await ScalarAsync(connectionString, countSql)) != expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(expected, count);
    }

    [Fact]
    public async Task Slow_writes_pause_the_copy_until_writes_are_fast_again()
    {
        await using var heartbeat = MySqlHeartbeat.Create(_primary, _log, TimeSpan.FromMilliseconds(50));
        heartbeat.Start();
        await using var throttler = new Throttler([heartbeat.LatencySignal(TimeSpan.FromMilliseconds(300))],
            TimeSpan.FromMilliseconds(50), TimeProvider.System);
        throttler.Start();
        await WaitUntilAsync(() => heartbeat.Writes > 3 && !throttler.IsThrottled, "fast heartbeats");

        // A transaction holding the heartbeat's row makes the next beat wait, as a stalled commit queue would.
        await using (var blocker = new MySqlConnection(_primary))
        {
            await blocker.OpenAsync();
            await using MySqlTransaction transaction = await blocker.BeginTransactionAsync();
            await using (var hold = new MySqlCommand($"SELECT * FROM {_log.Name} WHERE id = {MySqlHeartbeat.HeartbeatId} FOR UPDATE", blocker, transaction))
            {
                await hold.ExecuteNonQueryAsync();
            }

            await WaitUntilAsync(() => throttler.IsThrottled, "the waiting heartbeat to exceed 300 ms");
            Assert.StartsWith("write latency is ", throttler.Reason, StringComparison.Ordinal);
            await transaction.RollbackAsync();
        }

        // The slow beat ages out of the half-second window once writes are fast again.
        await WaitUntilAsync(() => !throttler.IsThrottled, "the copy to be let go");
    }

    [Fact]
    public async Task Max_load_throttles_on_a_status_variable_and_critical_load_aborts()
    {
        // Threads_connected is at least 1 (our own probe): a limit of 0 is always exceeded.
        await using var throttled = new Throttler(MySqlThrottleSignals.Load(_primary, "Threads_connected=0", "--max-load"), TimeSpan.FromSeconds(1), TimeProvider.System);
        await throttled.CheckAsync(CancellationToken.None);
        Assert.StartsWith("Threads_connected is ", throttled.Reason, StringComparison.Ordinal);

        await using var aborting = new Throttler([], TimeSpan.FromSeconds(1), TimeProvider.System,
            MySqlThrottleSignals.Load(_primary, "Threads_connected=0", "--critical-load"));
        await aborting.CheckAsync(CancellationToken.None);
        var e = await Assert.ThrowsAsync<OscException>(() => aborting.WaitUntilOpenAsync(CancellationToken.None));
        Assert.Contains("Threads_connected", e.Message, StringComparison.Ordinal);

        await using var relaxed = new Throttler(MySqlThrottleSignals.Load(_primary, "Threads_connected=100000", "--max-load"), TimeSpan.FromSeconds(1), TimeProvider.System);
        await relaxed.CheckAsync(CancellationToken.None);
        Assert.False(relaxed.IsThrottled);
    }

    [Fact]
    public async Task A_real_run_pauses_its_copy_on_max_load_until_the_limit_is_lifted_and_critical_load_stops_it_with_its_work_kept()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "load_run", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_3000;
            """);
        string checksum = await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t");

        // Threads_connected is at least osc's own sessions: a limit of 1 is always exceeded.
        LiveOscRun run = LiveOscRun.Start("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json", "--no-replica-discovery",
            "--max-load", "Threads_connected=1");
        JsonElement first = await run.WaitForThrottledAsync("Threads_connected is ", TimeSpan.FromSeconds(60));
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var paused = run.JsonEvents.Where(e => e.TryGetProperty("throttled", out JsonElement r) && r.ValueKind == JsonValueKind.String
                                               && r.GetString()!.StartsWith("Threads_connected is ", StringComparison.Ordinal)).ToList();
        Assert.True(paused.Count >= 2, "the copy stays paused while the load is above the limit");
        Assert.All(paused, e => Assert.Equal(first.GetProperty("rowsCopied").GetInt64(), e.GetProperty("rowsCopied").GetInt64()));
        Assert.False(run.Completion.IsCompleted);

        // The operator lifts the limit on the running migration; the copy goes on and the run completes.
        OscRunner.Result lifted = await OscRunner.RunAsync("control", "max-load=", db.Uri, "--table", "t");
        Assert.True(lifted.ExitCode == 0, lifted.Stdout + lifted.Stderr);
        OscRunner.Result done = await run.Completion.WaitAsync(TimeSpan.FromSeconds(90));
        Assert.True(done.ExitCode == 0, done.Stderr);
        Assert.Equal(3000, LiveOscRun.ParseAll(done.Stdout)[^1].GetProperty("rowsCopied").GetInt64());

        // --critical-load: the run stops, its work kept for --resume, the new table untouched by a swap.
        await ExecuteAsync(db.ConnectionString, "DROP TABLE t_osc_old");
        // (Rebuilt: MariaDB would widen the column instantly, with no copy to stop.)
        OscRunner.Result critical = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY c VARCHAR(60)", "--execute", "--native", "off",
            "--no-replica-discovery", "--critical-load", "Threads_connected=1");
        Assert.Equal(1, critical.ExitCode);
        Assert.Contains("Threads_connected", critical.Stderr, StringComparison.Ordinal);
        Assert.Contains("--resume", critical.Stderr, StringComparison.Ordinal);
        Assert.Equal("varchar(40)", await ScalarAsync(db.ConnectionString,
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'c'"));
        Assert.Equal(checksum.Split(':')[0], (await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t")));
        OscRunner.Result resumed = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY c VARCHAR(60)", "--execute", "--native", "off",
            "--no-replica-discovery", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("varchar(60)", await ScalarAsync(db.ConnectionString,
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'c'"));
    }

    [Fact]
    public void A_malformed_load_limit_is_refused_with_its_syntax() =>
        Assert.Contains("Variable=number", Assert.Throws<OscException>(() => MySqlThrottleSignals.Load(_primary, "Threads_running>50", "--max-load")).Message,
            StringComparison.Ordinal);

    [Fact]
    public async Task A_misspelled_status_variable_is_an_error_at_start_and_nothing_is_created()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "load_names", "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1);");
        string uri = db.Uri;

        var misspelled = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY v BIGINT", "--execute", "--no-replica-discovery",
            "--max-load", "Threads_running=50,Threads_runing=50");
        Assert.Equal(1, misspelled.ExitCode);
        Assert.Contains("--max-load: the server has no status variable Threads_runing", misspelled.Stderr, StringComparison.Ordinal);
        Assert.Contains("Threads_running", misspelled.Stderr, StringComparison.Ordinal);
        var critical = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY v BIGINT", "--critical-load", "Nope=1");
        Assert.Equal(1, critical.ExitCode);
        Assert.Contains("--critical-load: the server has no status variable Nope", critical.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await db.OscTablesAsync());

        var valid = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY v BIGINT", "--execute", "--no-replica-discovery",
            "--max-load", "threads_running=1000", "--critical-load", "Threads_connected=100000");
        Assert.True(valid.ExitCode == 0, valid.Stderr);
    }

    private static async Task CheckUntilAsync(Throttler throttler, Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        await throttler.CheckAsync(CancellationToken.None);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}; last reason: {throttler.Reason}");
            await Task.Delay(50);
            await throttler.CheckAsync(CancellationToken.None);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }
}
