using System.Globalization;
using System.Text.Json;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// `osc alter --execute` on a real MariaDB while two-phase XA transactions write the table: MariaDB logs their rows at
/// XA PREPARE and their XA COMMIT or XA ROLLBACK later as a group of its own. The replay holds the rows until the
/// outcome, the checkpoint never passes a held XA PREPARE, the swap waits for a pending one, and a run does not start
/// copying while one prepared before it is pending. Verification is skipped where it would repair what the replay
/// missed: the tests compare the new table with the old one, which took every write up to the swap.
/// </summary>
[Collection("servers")]
public sealed class MySqlXaTests(ServersFixture servers, ITestOutputHelper output)
{
    private const string Alter = "MODIFY k BIGINT NOT NULL";
    private const string TwoThousandRows = """
        CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
        INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_2000;
        """;
    private const string Checksum = "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM ";

    [Fact]
    public async Task Xa_transactions_prepared_during_the_copy_are_replayed_at_their_commit_and_dropped_at_their_rollback()
    {
        var db = await OscTestDatabase.CreateAsync(servers, "xacopy", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_100000;
            """);
        // The throttle flag is raised part-way through the copy, so only its name is made here.
        string throttle = Path.Combine(Path.GetTempPath(), $"osc-xa-throttle-{Guid.NewGuid():N}");
        using var postpone = new FlagFile("xa-postpone");
        var xa = new XaSessions(db.ConnectionString);
        try
        {
            var run = LiveOscRun.Start("alter", db.Uri, "--table", "t", "--alter", Alter, "--execute", "--json", "--workers", "1", "--chunk-time-millis", "50",
                "--throttle-flag-file", throttle, "--postpone-cut-over-flag-file", postpone.Path, "--skip-verify");

            // The copy is held part-way, so the transactions below touch rows copied already and rows still to copy.
            await WaitUntilAsync(async () => await MySqlOnlineAlterTests.ShadowRowsAsync(db.ConnectionString) >= 10000, run, "10,000 rows copied");
            await File.WriteAllTextAsync(throttle, "");
            long copiedWhenHeld = await MySqlOnlineAlterTests.ShadowRowsAsync(db.ConnectionString);

            await xa.PrepareAsync("a", "UPDATE t SET k = -1 WHERE id IN (5, 90000)", "DELETE FROM t WHERE id = 10", "INSERT INTO t VALUES (200001, 1, 'xa-a')");
            await xa.PrepareAsync("r", "UPDATE t SET k = -2 WHERE id IN (6, 90001)", "DELETE FROM t WHERE id = 11", "INSERT INTO t VALUES (200002, 2, 'xa-r')");
            // Interleaved: x1 prepared first, committed last; a plain transaction changes x2's row after x2 commits.
            await xa.PrepareAsync("x1", "UPDATE t SET c = 'x1' WHERE id IN (20, 95000)");
            await xa.PrepareAsync("x2", "UPDATE t SET c = 'x2' WHERE id IN (21, 95001)");
            await ExecuteAsync(db.ConnectionString, "UPDATE t SET c = 'plain' WHERE id = 22");

            // The copy goes on while they are prepared: it reads the rows as they were before them.
            File.Delete(throttle);
            await run.WaitForEventAsync(e => e.TryGetProperty("state", out JsonElement s) && s.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
                TimeSpan.FromMinutes(3), "the postponed cut-over");

            await xa.CompleteElsewhereAsync("a", "COMMIT"); // from another connection
            await xa.CompleteAsync("r", "ROLLBACK");
            await xa.CompleteAsync("x2", "COMMIT");
            await ExecuteAsync(db.ConnectionString, "UPDATE t SET c = 'after-x2' WHERE id = 21");
            await xa.CompleteAsync("x1", "COMMIT");

            postpone.Lift();
            OscRunner.Result result = await run.Completion;
            Assert.True(result.ExitCode == 0, result.Stderr);
            output.WriteLine($"the copy was held at {copiedWhenHeld:N0} rows");

            Assert.Equal("bigint(20)", await ColumnTypeAsync(db.ConnectionString));
            Assert.Equal(await ScalarAsync(db.ConnectionString, Checksum + "t_osc_old"), await ScalarAsync(db.ConnectionString, Checksum + "t"));
            Assert.Equal("-1,-1", await ScalarAsync(db.ConnectionString, "SELECT GROUP_CONCAT(k ORDER BY id) FROM t WHERE id IN (5, 90000)"));
            Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t WHERE id IN (10, 200002)"));
            Assert.Equal("xa-a", await ScalarAsync(db.ConnectionString, "SELECT c FROM t WHERE id = 200001"));
            Assert.Equal("6,11,90001", await ScalarAsync(db.ConnectionString, "SELECT GROUP_CONCAT(id ORDER BY id) FROM t WHERE id IN (6, 11, 90001) AND k <> -2"));
            Assert.Equal("x1,after-x2,plain,x1,x2", await ScalarAsync(db.ConnectionString, "SELECT GROUP_CONCAT(c ORDER BY id) FROM t WHERE id IN (20, 21, 22, 95000, 95001)"));
        }
        finally
        {
            await xa.DisposeAsync();
            File.Delete(throttle);
        }
    }

    [Fact]
    public async Task A_prepared_xa_transaction_pending_at_the_cut_over_holds_the_swap_until_it_commits()
    {
        var db = await OscTestDatabase.CreateAsync(servers, "xaswap", TwoThousandRows);
        using var postpone = new FlagFile("xa-postpone");
        var xa = new XaSessions(db.ConnectionString);
        try
        {
            LiveOscRun run = await StartPostponedAsync(db, postpone.Path, "--cut-over-lock-timeout-seconds", "1", "--cut-over-attempts", "20", "--skip-verify");
            await xa.PrepareAsync("p", "INSERT INTO t VALUES (5001, 1, 'pending')", "DELETE FROM t WHERE id = 1");
            postpone.Lift();

            await run.WaitForEventAsync(e => e.TryGetProperty("state", out JsonElement s) && s.GetString() == "cutting over", TimeSpan.FromMinutes(1), "the cut-over");
            await Task.Delay(TimeSpan.FromSeconds(4)); // several attempts, each waiting up to 1 s on the table's lock
            Assert.False(run.Completion.IsCompleted, "the swap must wait for the prepared transaction");
            Assert.Equal("int(11)", await ColumnTypeAsync(db.ConnectionString));

            await xa.CompleteAsync("p", "COMMIT");
            OscRunner.Result result = await run.Completion;
            Assert.True(result.ExitCode == 0, result.Stderr);
            Assert.Equal("bigint(20)", await ColumnTypeAsync(db.ConnectionString));
            Assert.Equal("pending", await ScalarAsync(db.ConnectionString, "SELECT c FROM t WHERE id = 5001"));
            Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t WHERE id = 1"));
            Assert.Equal(await ScalarAsync(db.ConnectionString, Checksum + "t_osc_old"), await ScalarAsync(db.ConnectionString, Checksum + "t"));
        }
        finally
        {
            await xa.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_prepared_xa_transaction_that_stays_pending_stops_the_cut_over_with_a_clear_error()
    {
        var db = await OscTestDatabase.CreateAsync(servers, "xastuck", TwoThousandRows);
        using var postpone = new FlagFile("xa-postpone");
        var xa = new XaSessions(db.ConnectionString);
        try
        {
            LiveOscRun run = await StartPostponedAsync(db, postpone.Path, "--cut-over-lock-timeout-seconds", "1", "--cut-over-attempts", "2", "--cleanup-on-abort");
            await xa.PrepareAsync("stuck", "UPDATE t SET k = -1 WHERE id = 7");
            await xa.DisconnectAsync("stuck"); // detached, it keeps its locks
            postpone.Lift();

            OscRunner.Result result = await run.Completion;
            output.WriteLine(result.Stderr);
            Assert.Equal(1, result.ExitCode);
            Assert.Contains("XA RECOVER", result.Stderr, StringComparison.Ordinal);
            Assert.Equal("int(11)", await ColumnTypeAsync(db.ConnectionString));
            Assert.Equal("", await db.OscTablesAsync());

            await xa.CompleteElsewhereAsync("stuck", "COMMIT");
            Assert.Equal("-1", await ScalarAsync(db.ConnectionString, "SELECT k FROM t WHERE id = 7"));
        }
        finally
        {
            await xa.DisposeAsync();
        }
    }

    /// <summary>kill -9 while a prepared transaction's rows are held: the checkpoint saved meanwhile names the
    /// transaction's start, not the later positions applied, so the resumed run reads its XA PREPARE again and
    /// replays it at the XA COMMIT made while no osc ran.</summary>
    [Fact]
    public async Task Kill_9_while_xa_rows_are_held_then_resume_replays_them_at_the_commit()
    {
        var db = await OscTestDatabase.CreateAsync(servers, "xakill", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_20000;
            """);
        using var postpone = new FlagFile("xa-postpone");
        var xa = new XaSessions(db.ConnectionString);
        try
        {
            (string File, long Position) before, after;
            await using (var osc = OscProcess.Start(db.Uri, "--table", "t", "--alter", Alter, "--execute", "--postpone-cut-over-flag-file", postpone.Path))
            {
                await WaitUntilAsync(async () => await CheckpointAsync(db.ConnectionString) is { CopyFinished: true }, osc, "a checkpoint after the copy");
                before = await MasterStatusAsync(db.ConnectionString);
                await xa.PrepareAsync("k", "UPDATE t SET k = -5 WHERE id = 7", "DELETE FROM t WHERE id = 8", "INSERT INTO t VALUES (30001, 1, 'xa-k')");
                after = await MasterStatusAsync(db.ConnectionString);

                // Checkpoints every two seconds, with the heartbeat moving the applied position on meanwhile.
                await Task.Delay(TimeSpan.FromSeconds(5));
                Assert.False(osc.HasExited, osc.Stderr);
                (string file, long position) = (await CheckpointAsync(db.ConnectionString))!.Value.Position;
                output.WriteLine($"XA transaction from {before.File}:{before.Position} to {after.File}:{after.Position}; checkpoint at {file}:{position}");
                Assert.True(file == before.File && before.File == after.File, "the test expects one binlog file");
                Assert.InRange(position, before.Position, after.Position - 1);
                osc.Kill();
            }

            await xa.CompleteElsewhereAsync("k", "COMMIT");
            postpone.Lift();
            OscRunner.Result resumed = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", Alter, "--execute", "--resume", "--skip-verify");
            Assert.True(resumed.ExitCode == 0, resumed.Stderr);

            Assert.Equal("bigint(20)", await ColumnTypeAsync(db.ConnectionString));
            Assert.Equal("-5", await ScalarAsync(db.ConnectionString, "SELECT k FROM t WHERE id = 7"));
            Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t WHERE id = 8"));
            Assert.Equal("xa-k", await ScalarAsync(db.ConnectionString, "SELECT c FROM t WHERE id = 30001"));
            Assert.Equal(await ScalarAsync(db.ConnectionString, Checksum + "t_osc_old"), await ScalarAsync(db.ConnectionString, Checksum + "t"));
        }
        finally
        {
            await xa.DisposeAsync();
        }
    }

    /// <summary>An XA transaction prepared before the run has its rows before the replay's start: the run waits for it
    /// before copying, so its committed rows are copied.</summary>
    [Fact]
    public async Task A_run_waits_for_an_xa_transaction_prepared_before_it_then_copies_its_rows()
    {
        var db = await OscTestDatabase.CreateAsync(servers, "xabefore", TwoThousandRows);
        var xa = new XaSessions(db.ConnectionString);
        try
        {
            await xa.PrepareAsync("early", "INSERT INTO t VALUES (5001, 1, 'early')", "DELETE FROM t WHERE id = 3");
            var run = LiveOscRun.Start("alter", db.Uri, "--table", "t", "--alter", Alter, "--execute", "--json", "--skip-verify");
            // It says what it waits for.
            JsonElement waiting = await run.WaitForThrottledAsync("XA transactions prepared before the start", TimeSpan.FromSeconds(20));
            Assert.Equal("waiting for prepared XA transactions", waiting.GetProperty("state").GetString());
            // The XID as XA RECOVER ... CONVERT XID shows it: 'early' in hex.
            Assert.Contains("X'6561726C79'", waiting.GetProperty("throttled").GetString(), StringComparison.OrdinalIgnoreCase);
            Assert.False(run.Completion.IsCompleted, "the run must wait for the transaction prepared before it");
            Assert.Equal(0, await MySqlOnlineAlterTests.ShadowRowsAsync(db.ConnectionString));
            await xa.CompleteAsync("early", "COMMIT");

            OscRunner.Result result = await run.Completion;
            Assert.True(result.ExitCode == 0, result.Stderr);
            Assert.Equal("early", await ScalarAsync(db.ConnectionString, "SELECT c FROM t WHERE id = 5001"));
            Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t WHERE id = 3"));
            Assert.Equal(await ScalarAsync(db.ConnectionString, Checksum + "t_osc_old"), await ScalarAsync(db.ConnectionString, Checksum + "t"));
        }
        finally
        {
            await xa.DisposeAsync();
        }
    }

    /// <summary>Starts `osc alter --execute --json` with the cut-over postponed by <paramref name="postpone"/>, and waits until it is.</summary>
    private static async Task<LiveOscRun> StartPostponedAsync(OscTestDatabase db, string postpone, params string[] extra)
    {
        var run = LiveOscRun.Start(["alter", db.Uri, "--table", "t", "--alter", Alter, "--execute", "--json", "--postpone-cut-over-flag-file", postpone, .. extra]);
        await run.WaitForEventAsync(e => e.TryGetProperty("state", out JsonElement s) && s.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
            TimeSpan.FromMinutes(2), "the postponed cut-over");
        return run;
    }

    private static Task<string> ColumnTypeAsync(string connectionString) =>
        ScalarAsync(connectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'");

    /// <summary>The stored checkpoint's position and whether it says the copy finished; null before the first.</summary>
    private static async Task<((string File, long Position) Position, bool CopyFinished)?> CheckpointAsync(string connectionString)
    {
        try
        {
            string json = await ScalarAsync(connectionString, "SELECT value FROM t_osc_log WHERE id = 2");
            if (json.Length == 0)
            {
                return null;
            }

            using var document = JsonDocument.Parse(json);
            string position = document.RootElement.GetProperty("position").GetString()!;
            int colon = position.LastIndexOf(':');
            return ((position[..colon], long.Parse(position[(colon + 1)..], CultureInfo.InvariantCulture)), document.RootElement.GetProperty("copyFinished").GetBoolean());
        }
        catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchTable)
        {
            return null;
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, LiveOscRun run, string what)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!await condition())
        {
            if (run.Completion.IsCompleted)
            {
                OscRunner.Result r = await run.Completion;
                Assert.Fail($"osc ended (exit {r.ExitCode}) before {what}: {r.Stderr}");
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, OscProcess osc, string what)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!await condition())
        {
            if (osc.HasExited)
            {
                Assert.Fail($"osc exited before {what}: {osc.ExitReport()}");
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>XA transactions, each on its own connection; any left prepared is rolled back at the end, so no later
    /// test (and no later run, which waits for them) meets it.</summary>
    private sealed class XaSessions(string connectionString) : IAsyncDisposable
    {
        private readonly Dictionary<string, MySqlConnection?> _open = [];

        public async Task PrepareAsync(string xid, params string[] statements)
        {
            var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync();
            _open[xid] = connection;
            foreach (string sql in (string[])[$"XA START '{xid}'", .. statements, $"XA END '{xid}'", $"XA PREPARE '{xid}'"])
            {
                await using var command = new MySqlCommand(sql, connection);
                await command.ExecuteNonQueryAsync();
            }
        }

        /// <summary>Closes the connection that prepared it: the transaction stays prepared, for any connection to end.</summary>
        public async Task DisconnectAsync(string xid)
        {
            if (_open[xid] is { } connection)
            {
                await connection.DisposeAsync();
                _open[xid] = null;
            }
        }

        /// <summary>Closes the preparing connection and ends the transaction from a new one, once the server has
        /// detached it (the server notices the close a moment after the client: until then the XID is unknown to others).</summary>
        public async Task CompleteElsewhereAsync(string xid, string verb)
        {
            await DisconnectAsync(xid);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                try
                {
                    await ExecuteAsync(connectionString, $"XA {verb} '{xid}'");
                    break;
                }
                catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.XAERNotA && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(50);
                }
            }

            _open.Remove(xid);
        }

        public async Task CompleteAsync(string xid, string verb)
        {
            if (_open[xid] is { } connection)
            {
                await using var command = new MySqlCommand($"XA {verb} '{xid}'", connection);
                await command.ExecuteNonQueryAsync();
                await connection.DisposeAsync();
            }
            else
            {
                await ExecuteAsync(connectionString, $"XA {verb} '{xid}'");
            }

            _open.Remove(xid);
        }

        public async ValueTask DisposeAsync()
        {
            foreach ((string xid, MySqlConnection? connection) in _open)
            {
                if (connection is not null)
                {
                    await connection.DisposeAsync(); // detaches a prepared transaction; rolled back below
                }

                try
                {
                    await ExecuteAsync(connectionString, $"XA ROLLBACK '{xid}'");
                }
                catch (MySqlException)
                {
                    // Already completed.
                }
            }

            _open.Clear();
        }
    }
}
