using System.Diagnostics;
using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using Xunit.Abstractions;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// A long transaction holds a metadata lock on the table when the swap comes: `osc alter --execute` must retry, never
/// hold the application longer than its lock timeout, and either swap once the transaction ends or give up cleanly.
/// </summary>
[Collection("servers")]
public sealed class MySqlCutoverLockFaultTests(ServersFixture servers, ITestOutputHelper output)
{
    private const int LockTimeoutSeconds = 1;

    [Fact]
    public async Task The_swap_retries_behind_a_long_transaction_and_succeeds_once_it_ends()
    {
        OscTestDatabase db = await TableAsync();
        await using var holder = await HoldMetadataLockAsync(db);
        await using var probe = await Probe.StartAsync(db.ConnectionString);

        LiveOscRun run = LiveOscRun.Start("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json",
            "--cut-over-lock-timeout-seconds", LockTimeoutSeconds.ToString(CultureInfo.InvariantCulture), "--cut-over-attempts", "10");
        int seen = await CountLockAttemptsAsync(db, run, until: 2);
        await using (var commit = new MySqlCommand("COMMIT", holder))
        {
            await commit.ExecuteNonQueryAsync();
        }

        OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        ProbeResult probed = await probe.StopAsync();
        output.WriteLine($"lock attempts seen: {seen}; probe: {probed.Count} updates, slowest {probed.Slowest.TotalMilliseconds:0} ms");

        Assert.True(result.ExitCode == 0, result.Stderr);
        var done = LiveOscRun.ParseAll(result.Stdout)[^1];
        Assert.Equal("done", done.GetProperty("event").GetString());
        // The second attempt was seen waiting, so the first had failed; the swap succeeded on the one the commit let through.
        Assert.True(done.GetProperty("cutOverAttempts").GetInt32() >= 2, "the swap went through only after the transaction ended");
        Assert.Equal("bigint(20)", await ScalarAsync(db.ConnectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal("t_osc_old", await db.OscTablesAsync());
        AssertProbeBounded(probed);

        // Every probe write is in the new table.
        Assert.Equal(probed.Count.ToString(CultureInfo.InvariantCulture), await ScalarAsync(db.ConnectionString, "SELECT n FROM t WHERE id = 1"));
        Assert.Equal("3000", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t"));
    }

    [Fact]
    public async Task The_swap_gives_up_after_its_attempts_leaving_the_original_intact_and_its_work_kept_for_resume()
    {
        OscTestDatabase db = await TableAsync();
        string before = await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t");
        await using var holder = await HoldMetadataLockAsync(db);
        await using var probe = await Probe.StartAsync(db.ConnectionString);

        OscRunner.Result result = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute",
            "--cut-over-lock-timeout-seconds", LockTimeoutSeconds.ToString(CultureInfo.InvariantCulture), "--cut-over-attempts", "3");
        ProbeResult probed = await probe.StopAsync();
        output.WriteLine($"probe: {probed.Count} updates, slowest {probed.Slowest.TotalMilliseconds:0} ms");
        output.WriteLine(result.Stderr);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("did not succeed in 3 attempts", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("could not lock", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("int(11)", await ScalarAsync(db.ConnectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal(before, await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t"));
        Assert.Equal(probed.Count.ToString(CultureInfo.InvariantCulture), await ScalarAsync(db.ConnectionString, "SELECT n FROM t WHERE id = 1"));
        // A failure after the first checkpoint keeps the shadow and bookkeeping table for --resume (no sentry, no lock).
        Assert.Equal("t_osc_log,t_osc_new", await db.OscTablesAsync());
        Assert.Contains("--resume", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await ScalarAsync(db.ConnectionString, $"SELECT IS_USED_LOCK('osc.{db.Name}.t')"));
        AssertProbeBounded(probed);
    }

    [Fact]
    public async Task Verification_behind_a_long_writing_transaction_gives_up_after_its_attempts_without_holding_the_application()
    {
        OscTestDatabase db = await TableAsync();
        string before = await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t WHERE id <> 2");

        // A transaction that wrote to the table: its metadata lock conflicts with verification's READ lock.
        await using var writer = new MySqlConnection(db.ConnectionString);
        await writer.OpenAsync();
        await using (var begin = new MySqlCommand("START TRANSACTION; UPDATE t SET c = 'uncommitted' WHERE id = 2;", writer))
        {
            await begin.ExecuteNonQueryAsync();
        }

        await using var probe = await Probe.StartAsync(db.ConnectionString);
        OscRunner.Result result = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute",
            "--cut-over-lock-timeout-seconds", LockTimeoutSeconds.ToString(CultureInfo.InvariantCulture), "--cut-over-attempts", "3", "--cleanup-on-abort");
        ProbeResult probed = await probe.StopAsync();
        output.WriteLine($"probe: {probed.Count} updates, slowest {probed.Slowest.TotalMilliseconds:0} ms");
        output.WriteLine(result.Stderr);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Verification could not hold", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("3 attempts", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("int(11)", await ScalarAsync(db.ConnectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal(before, await ScalarAsync(db.ConnectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t WHERE id <> 2"));
        Assert.Equal("", await db.OscTablesAsync());
        // MariaDB lets writes pass a waiting READ lock request, so the application may not wait at all; it must never
        // wait longer than the lock timeout.
        Assert.True(probed.Count > 0 && probed.Slowest < TimeSpan.FromSeconds(LockTimeoutSeconds + 0.75), $"an application write waited {probed.Slowest.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task An_instant_alter_behind_a_long_transaction_gives_up_within_its_lock_timeout_naming_it_and_runs_once_it_ends()
    {
        OscTestDatabase db = await TableAsync();
        await using var holder = await HoldMetadataLockAsync(db);
        string holderId;
        await using (var id = new MySqlCommand("SELECT CONNECTION_ID()", holder))
        {
            holderId = Convert.ToString(await id.ExecuteScalarAsync(), CultureInfo.InvariantCulture)!;
        }

        await using var probe = await Probe.StartAsync(db.ConnectionString);
        string[] run = ["alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN added INT NOT NULL DEFAULT 5", "--execute", "--no-replica-discovery",
            "--cut-over-lock-timeout-seconds", LockTimeoutSeconds.ToString(CultureInfo.InvariantCulture), "--cut-over-attempts", "2"];
        OscRunner.Result refused = await OscRunner.RunAsync(run);
        ProbeResult probed = await probe.StopAsync();
        output.WriteLine($"probe: {probed.Count} updates, slowest {probed.Slowest.TotalMilliseconds:0} ms");
        output.WriteLine(refused.Stderr);

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("did not get the table's lock in 2 attempts", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains($"thread {holderId} (", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'added'"));
        Assert.Equal(probed.Count.ToString(CultureInfo.InvariantCulture), await ScalarAsync(db.ConnectionString, "SELECT n FROM t WHERE id = 1"));
        Assert.Equal("", await db.OscTablesAsync());
        AssertProbeBounded(probed);

        await using (var commit = new MySqlCommand("COMMIT", holder))
        {
            await commit.ExecuteNonQueryAsync();
        }

        OscRunner.Result ran = await OscRunner.RunAsync(run);
        Assert.True(ran.ExitCode == 0, ran.Stderr);
        Assert.Equal("3000", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t WHERE added = 5"));
    }

    /// <summary>
    /// The application waited on us at most the lock timeout (plus scheduling slack on a busy machine), and it did
    /// wait: a probe that never queued would prove nothing.
    /// </summary>
    private static void AssertProbeBounded(ProbeResult probed)
    {
        Assert.True(probed.Slowest > TimeSpan.FromSeconds(LockTimeoutSeconds * 0.5), $"the probe never queued behind the swap's lock (slowest {probed.Slowest.TotalMilliseconds:0} ms)");
        Assert.True(probed.Slowest < TimeSpan.FromSeconds(LockTimeoutSeconds + 0.75), $"an application write waited {probed.Slowest.TotalMilliseconds:0} ms");
    }

    private async Task<OscTestDatabase> TableAsync() => await OscTestDatabase.CreateAsync(servers, "cutover_fault", """
        CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40), n INT NOT NULL DEFAULT 0);
        INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq), 0 FROM seq_1_to_3000;
        """);

    /// <summary>An open transaction that has read the table: it holds a shared metadata lock until it ends.</summary>
    private static async Task<MySqlConnection> HoldMetadataLockAsync(OscTestDatabase db)
    {
        var connection = new MySqlConnection(db.ConnectionString);
        await connection.OpenAsync();
        await using var begin = new MySqlCommand("START TRANSACTION; SELECT COUNT(*) FROM t WHERE id = 2;", connection);
        await begin.ExecuteNonQueryAsync();
        return connection;
    }

    /// <summary>Counts the swap's LOCK TABLES attempts seen waiting in the processlist (each runs on its own connection).</summary>
    private static async Task<int> CountLockAttemptsAsync(OscTestDatabase db, LiveOscRun run, int until)
    {
        var attempts = new HashSet<string>();
        var deadline = Stopwatch.StartNew();
        while (attempts.Count < until)
        {
            Assert.False(run.Completion.IsCompleted, $"osc ended before {until} lock attempts: {(run.Completion.IsCompleted ? run.Completion.Result.Stderr : "")}");
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(90), "the swap never tried to lock the table");
            string id = await ScalarAsync(db.ConnectionString,
                $"SELECT COALESCE(MIN(ID), '') FROM information_schema.PROCESSLIST WHERE DB = '{db.Name}' AND INFO LIKE 'LOCK TABLES%' AND STATE LIKE '%metadata lock%'");
            if (id.Length > 0)
            {
                attempts.Add(id);
            }

            await Task.Delay(20);
        }

        return attempts.Count;
    }

    private sealed record ProbeResult(int Count, TimeSpan Slowest);

    /// <summary>The application: one single-row UPDATE after another, each timed.</summary>
    private sealed class Probe : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private Task<ProbeResult>? _loop;

        public static async Task<Probe> StartAsync(string connectionString)
        {
            var probe = new Probe();
            var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync();
            probe._loop = Task.Run(() => probe.LoopAsync(connection));
            return probe;
        }

        public async Task<ProbeResult> StopAsync()
        {
            await _stop.CancelAsync();
            return await _loop!;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested)
            {
                await StopAsync();
            }

            _stop.Dispose();
        }

        private async Task<ProbeResult> LoopAsync(MySqlConnection connection)
        {
            await using (connection)
            {
                int count = 0;
                TimeSpan slowest = TimeSpan.Zero;
                while (!_stop.IsCancellationRequested)
                {
                    var clock = Stopwatch.StartNew();
                    await using (var update = new MySqlCommand("UPDATE t SET n = n + 1 WHERE id = 1", connection) { CommandTimeout = 120 })
                    {
                        await update.ExecuteNonQueryAsync(CancellationToken.None);
                    }

                    count++;
                    slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
                    await Task.Delay(10, CancellationToken.None);
                }

                return new ProbeResult(count, slowest);
            }
        }
    }
}
