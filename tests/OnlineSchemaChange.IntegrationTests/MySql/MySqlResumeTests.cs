using System.Globalization;
using System.Text.Json;
using MySqlConnector;
using OnlineSchemaChange.Cli;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using Writes = OnlineSchemaChange.IntegrationTests.MySql.MySqlOnlineAlterTests.Writes;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// Checkpoints, --resume and stopping: `osc alter --execute` killed (-9) or signalled mid-run on a real MariaDB, then
/// resumed, with the application writing throughout.
/// </summary>
[Collection("servers")]
public sealed class MySqlResumeTests(ServersFixture servers, ITestOutputHelper output)
{
    private const string Alter = "MODIFY k BIGINT NOT NULL";

    // With several workers, chunks beyond the watermark finish before the kill too: the resume skips them. (Without
    // an AUTO_INCREMENT column: with one, under MariaDB's default innodb_autoinc_lock_mode, the copy runs one worker.)
    [Theory]
    [InlineData("1", " AUTO_INCREMENT")]
    [InlineData("3", "")]
    public async Task Kill_9_during_the_copy_under_writes_then_resume_finishes_without_recopying_the_checkpointed_chunks(string workers, string autoIncrement)
    {
        var (connectionString, uri) = await DatabaseAsync($"""
            CREATE TABLE t (id INT PRIMARY KEY{autoIncrement}, k INT NOT NULL, c VARCHAR(40), KEY kc (k, c(8)) COMMENT 'built after the copy');
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_200000;
            """);
        using var stop = new CancellationTokenSource();
        Task<Writes> load = Writes.RunAsync(connectionString, 200000, stop.Token, explicitIds: autoIncrement.Length == 0);

        await using var holder = new MySqlConnection(connectionString);
        // Deferred whatever replicas the server has by now: the resume must build what the killed run had not.
        string waiting = await InterruptedRun.KillWithAChunkWaitingAsync(uri, Alter, workers, Probe(connectionString, holder), null, "--defer-indexes", "on");

        Assert.Equal("int(11)", await ColumnTypeAsync(connectionString));
        // The plain index is built once the copy is done: not yet, so the resume builds it.
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_osc_new' AND INDEX_NAME = 'kc'"));

        // The copy resumes after the checkpoint's watermark (below the held key); with several workers the chunks
        // after the held one are recorded as copied too, and the resume skips them.
        long watermark = await CheckpointWatermarkAsync(connectionString);
        Assert.InRange(watermark, 20_000, 149_999);
        long checkpointed = await CheckpointRowsAsync(connectionString);

        // The killed run's waiting chunk outlives it: the server notices the lost client only when it answers. Left
        // alone it would commit rows read before the kill once our lock goes, in the middle of the resumed run; the
        // resume must end it first. Our lock goes once it has, so the resumed copy can pass the held key.
        var resuming = OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume", "--json");
        await InterruptedRun.WaitUntilGoneAsync(Probe(connectionString, holder), waiting, resuming);
        await using (var rollback = new MySqlCommand("ROLLBACK", holder))
        {
            await rollback.ExecuteNonQueryAsync();
        }

        var resumed = await resuming;
        await Task.Delay(200);
        await stop.CancelAsync();
        Writes writes = await load;

        output.WriteLine(resumed.Stderr);
        Assert.True(resumed.ExitCode == 0, resumed.Stderr + resumed.Stdout);
        JsonElement done = LastJsonLine(resumed.Stdout);
        output.WriteLine(done.ToString());
        Assert.Contains(done.GetProperty("notes").EnumerateArray(), n => n.GetString()!.StartsWith($"Ended session {waiting}, ", StringComparison.Ordinal));
        long copied = done.GetProperty("rowsCopied").GetInt64();
        long before = done.GetProperty("resumedAfterRows").GetInt64();
        Assert.True(before >= 20000, $"the resume started from the checkpoint's {before:N0} rows");
        Assert.True(copied < 200000, $"the resumed run copied {copied:N0} rows, as many as the table: finished chunks were copied again");
        // Rows the checkpoint records as copied, up to its watermark and beyond it, are not copied again (each write
        // of the load adds or removes at most one key).
        long keysChanged = writes.Inserted.Count + writes.Deleted.Count;
        Assert.True(copied <= 200000 - checkpointed + keysChanged + 100,
            $"the resumed run copied {copied:N0} rows; the checkpoint had {checkpointed:N0} of the 200,000 (watermark {watermark:N0}) and the load changed {keysChanged:N0} keys");
        Assert.Equal("bigint(20)", await ColumnTypeAsync(connectionString));
        Assert.Equal("t_osc_old", await ScalarAsync(connectionString, "SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'"));
        Assert.True(writes.Inserted.Count + writes.Incremented.Count + writes.Deleted.Count > 50, "the load must write through the kill and the resume");
        string created;
        await using (var connection = new MySqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await using var show = new MySqlCommand("SHOW CREATE TABLE t", connection);
            await using MySqlDataReader reader = await show.ExecuteReaderAsync();
            await reader.ReadAsync();
            created = reader.GetString(1);
        }

        Assert.Contains("KEY `kc` (`k`,`c`(8)) COMMENT 'built after the copy'", created, StringComparison.Ordinal);
        await MySqlOnlineAlterTests.AssertEveryWriteIsPresentAsync(connectionString, 200000, writes);
    }

    [Fact]
    public async Task A_resume_that_skips_verification_is_refused_when_the_alter_adds_a_unique_key()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY, u INT);
            INSERT INTO t SELECT seq, seq FROM seq_1_to_3000;
            """);
        const string AddKey = "ADD UNIQUE KEY uq (u)";
        // The first run, with verification, stops at its postponed swap and keeps its work (`osc control abort`).
        using var postpone = new FlagFile("mysql-resume-verify");
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", AddKey, "--execute", "--json", "--native", "off",
            "--postpone-cut-over-flag-file", postpone.Path);
        await run.WaitForEventAsync(e => e.TryGetProperty("state", out JsonElement s) && s.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
            TimeSpan.FromSeconds(60), "the copy to finish");
        OscRunner.Result aborted = await OscRunner.RunAsync("control", "abort", uri, "--table", "t");
        Assert.True(aborted.ExitCode == 0, aborted.Stdout + aborted.Stderr);
        Assert.Equal(130, (await run.Completion.WaitAsync(TimeSpan.FromSeconds(60))).ExitCode);
        postpone.Lift();

        var skipping = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", AddKey, "--execute", "--native", "off", "--resume", "--skip-verify");
        Assert.Equal(1, skipping.ExitCode);
        Assert.Contains("--skip-verify with an ALTER that adds the unique key uq", skipping.Stderr, StringComparison.Ordinal);
        // Refused, the kept work is still there for a resume that verifies.
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString,
            "SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'"));

        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", AddKey, "--execute", "--native", "off", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("1", await ScalarAsync(connectionString,
            "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'uq'"));
        Assert.Equal("3000", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
    }

    [Fact]
    public async Task Kill_9_during_the_cut_over_leaves_the_original_serving_and_resume_finishes()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_20000;
            """);
        string before = await ChecksumAsync(connectionString);

        // A reader's open transaction holds the table's metadata lock, so the cut-over waits in LOCK TABLES with its
        // sentry in place: the moment to kill it.
        await using var reader = new MySqlConnection(connectionString);
        await reader.OpenAsync();
        await using (var begin = new MySqlCommand("START TRANSACTION; SELECT COUNT(*) FROM t WHERE id = 1;", reader))
        {
            await begin.ExecuteNonQueryAsync();
        }

        await using (var osc = OscProcess.Start(uri, "--table", "t", "--alter", Alter, "--execute", "--cut-over-lock-timeout-seconds", "30"))
        {
            await InterruptedRun.WaitForAsync(async () => await ScalarAsync(connectionString,
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'LOCK TABLES%' AND STATE LIKE '%metadata lock%'") == "1"
                && await ScalarAsync(connectionString, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_osc_old'") == "1",
                osc, "the cut-over waiting on the table lock with its sentry");
            osc.Kill();
        }

        await using (var commit = new MySqlCommand("COMMIT", reader))
        {
            await commit.ExecuteNonQueryAsync();
        }

        // The original is intact and takes writes.
        Assert.Equal("int(11)", await ColumnTypeAsync(connectionString));
        Assert.Equal(before, await ChecksumAsync(connectionString));
        await ExecuteAsync(connectionString, "INSERT INTO t (id, k, c) VALUES (30001, 5, 'after the kill')");

        var rerun = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute");
        Assert.Equal(1, rerun.ExitCode);
        Assert.Contains("--resume", rerun.Stderr, StringComparison.Ordinal);

        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint(20)", await ColumnTypeAsync(connectionString));
        Assert.Equal("20001", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
        Assert.Equal("after the kill", await ScalarAsync(connectionString, "SELECT c FROM t WHERE id = 30001"));
        Assert.Equal("t_osc_old", await ScalarAsync(connectionString, "SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'"));
    }

    [Fact]
    public async Task Kill_9_while_the_cut_over_holds_its_lock_leaves_the_original_serving_and_resume_finishes()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_20000;
            """);
        using var beforeSwap = new BeforeCutoverHold();
        await using var blocker = new MySqlConnection(connectionString);
        await blocker.OpenAsync();
        await using var writer = new MySqlConnection(connectionString);
        await writer.OpenAsync();
        // Every row but the one written (a read would wait on the cut-over's WRITE lock, so nothing is read while it is held).
        const string Others = "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t WHERE id <> 5";
        string others = await ScalarAsync(connectionString, Others);
        await using (var osc = OscProcess.Start(uri, "--table", "t", "--alter", Alter, "--execute", "--hooks-path", beforeSwap.Path, "--cut-over-lock-timeout-seconds", "30"))
        {
            await beforeSwap.WaitUntilHeldAsync(osc);
            // An open write transaction: the cut-over catches up (nothing is committed yet), then waits for it in
            // LOCK TABLES. A row lock on the shadow will hold up the replay of that write.
            await using (var write = new MySqlCommand("START TRANSACTION; UPDATE t SET k = k + 1 WHERE id = 5;", writer))
            {
                await write.ExecuteNonQueryAsync();
            }

            await using (var hold = new MySqlCommand("START TRANSACTION; SELECT id FROM t_osc_new WHERE id = 5 FOR UPDATE;", blocker))
            {
                await hold.ExecuteNonQueryAsync();
            }

            beforeSwap.Release();
            await InterruptedRun.WaitForAsync(async () => await ScalarAsync(connectionString,
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'LOCK TABLES%' AND STATE LIKE '%metadata lock%'") == "1",
                osc, "the cut-over waiting on the table lock");
            // Committed while the lock request waits: the lock is granted after it, and the drain under the lock
            // waits for its replay, which the row lock on the shadow holds up.
            await using (var commit = new MySqlCommand("COMMIT", writer))
            {
                await commit.ExecuteNonQueryAsync();
            }

            // Held: a write to the original (one that changes nothing) waits for the cut-over's lock, with the sentry in place.
            await InterruptedRun.WaitForAsync(async () =>
                {
                    try
                    {
                        await ExecuteAsync(connectionString, "SET SESSION lock_wait_timeout = 1; UPDATE t SET c = c WHERE id = 1");
                        return false;
                    }
                    catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.LockWaitTimeout)
                    {
                        return await ScalarAsync(connectionString, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_osc_old' AND COLUMN_NAME = 'osc_sentry'") == "1";
                    }
                }, osc, "the cut-over holding its lock, its sentry in place");
            osc.Kill();
        }

        await using (var rollback = new MySqlCommand("ROLLBACK", blocker))
        {
            await rollback.ExecuteNonQueryAsync();
        }

        // The original is intact and takes writes at once: the lock died with osc's session.
        Assert.Equal("int(11)", await ColumnTypeAsync(connectionString));
        Assert.Equal(others, await ScalarAsync(connectionString, Others));
        Assert.Equal("6", await ScalarAsync(connectionString, "SELECT k FROM t WHERE id = 5"));
        await ExecuteAsync(connectionString, "SET SESSION lock_wait_timeout = 5; INSERT INTO t (id, k, c) VALUES (30001, 5, 'after the kill')");

        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint(20)", await ColumnTypeAsync(connectionString));
        Assert.Equal("20001", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
        Assert.Equal("6", await ScalarAsync(connectionString, "SELECT k FROM t WHERE id = 5"));
        Assert.Equal("after the kill", await ScalarAsync(connectionString, "SELECT c FROM t WHERE id = 30001"));
        Assert.Equal("t_osc_old", await ScalarAsync(connectionString, "SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'"));
    }

    /// <summary>
    /// A DBA KILLs every session of osc's user while the copy is held: osc's own session, which holds its run lock,
    /// is gone, so the run stops, and says the server ended its session (not "unexpected failure", which asks for a bug
    /// report); the work is kept and --resume finishes it.
    /// </summary>
    [Fact]
    public async Task Killing_osc_s_sessions_stops_the_run_with_a_clear_error_and_resume_finishes()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_3000;
            """);
        using var flag = new FlagFile("kill-sessions");
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--json", "--throttle-flag-file", flag.Path);
        await run.WaitForThrottledAsync("flag file", TimeSpan.FromSeconds(60));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (await CheckpointRowsAsync(connectionString) < 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "no checkpoint was saved");
            await Task.Delay(50);
        }

        await ExecuteAsync(connectionString, "INSERT INTO t VALUES (3001, 1, 'written before the kill')");
        await using (var admin = new MySqlConnection(connectionString))
        {
            await admin.OpenAsync();
            var sessions = new List<string>();
            await using (var list = new MySqlCommand("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AND ID <> CONNECTION_ID()", admin))
            await using (MySqlDataReader reader = await list.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    sessions.Add(reader.GetValue(0).ToString()!);
                }
            }

            Assert.NotEmpty(sessions);
            foreach (string id in sessions)
            {
                await using var kill = new MySqlCommand($"KILL {id}", admin);
                try
                {
                    await kill.ExecuteNonQueryAsync();
                }
                catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchThread)
                {
                    // Ended meanwhile.
                }
            }
        }

        flag.Lift();
        OscRunner.Result stopped = await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));
        output.WriteLine(stopped.Stderr);
        Assert.Equal(1, stopped.ExitCode);
        Assert.Contains("Lost the connection to the server", stopped.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unexpected failure", stopped.Stderr, StringComparison.Ordinal);
        Assert.Contains("--resume", stopped.Stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await LeftoversAsync(connectionString));
        Assert.Equal("int(11)", await ColumnTypeAsync(connectionString));

        OscRunner.Result resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint(20)", await ColumnTypeAsync(connectionString));
        Assert.Equal("3001", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
    }

    [Fact]
    public async Task A_resume_with_another_alter_is_refused_and_keeps_the_leftovers_then_the_same_alter_resumes()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_5000;
            """);
        await StopWhileCopyingAsync(connectionString, uri);

        var refused = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k INT UNSIGNED NOT NULL", "--execute", "--resume");

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("another ALTER", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("MODIFY K BIGINT NOT NULL", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("MODIFY K INT UNSIGNED NOT NULL", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("osc cleanup", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await LeftoversAsync(connectionString));

        // Spelling does not matter, only the change: the same ALTER written differently resumes.
        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER TABLE t modify   k bigint NOT NULL", "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint(20)", await ColumnTypeAsync(connectionString));
        Assert.Equal("5000", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
    }

    [Fact]
    public async Task A_resume_whose_binlog_was_purged_is_refused()
    {
        // The shared replica starts from the primary's first binlog (GTID slave_pos): started after this purge, it could
        // never connect and every later test that needs it would fail. So it is running before the purge, whatever
        // the order the tests run in.
        await servers.MySqlReplicaAsync();
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_5000;
            """);
        await StopWhileCopyingAsync(connectionString, uri);
        string position = await ScalarAsync(connectionString, "SELECT JSON_VALUE(value, '$.position') FROM t_osc_log WHERE id = 2");
        string file = position[..position.LastIndexOf(':')];

        await ExecuteAsync(connectionString, "FLUSH BINARY LOGS");
        var (current, _) = await MasterStatusAsync(connectionString);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            // A replica still reading an older file keeps it; retry until the file is gone.
            try
            {
                await ExecuteAsync(connectionString, $"PURGE BINARY LOGS TO '{current}'");
            }
            catch (MySqlException e)
            {
                output.WriteLine($"purge: {e.Message}");
            }

            if (!(await BinaryLogsAsync(connectionString)).Contains(file))
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{file} could not be purged");
            await Task.Delay(200);
        }

        var refused = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"{file} that the interrupted migration must replay from is no longer on the server", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("osc cleanup", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await LeftoversAsync(connectionString));
        Assert.Equal(0, (await OscRunner.RunAsync("cleanup", uri, "--table", "t")).ExitCode);
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task A_signal_stops_cleanly_keeps_the_work_and_resume_finishes(string signal)
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_5000;
            """);
        var (exitCode, stderr) = await InterruptedRun.SignalWhileCopyingAsync(uri, Alter, signal, () => CheckpointRowsAsync(connectionString));

        output.WriteLine(stderr);
        Assert.Equal(130, exitCode);
        Assert.Contains("--resume", stderr, StringComparison.Ordinal);
        Assert.Contains("osc cleanup", stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await LeftoversAsync(connectionString));
        await AssertNothingHeldAsync(connectionString);

        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint(20)", await ColumnTypeAsync(connectionString));
        Assert.Equal("5000", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
        Assert.Equal("t_osc_old", await LeftoversAsync(connectionString));
    }

    [Fact]
    public async Task Cleanup_refuses_while_a_run_is_live_and_after_a_kill_ends_the_chunk_it_left_waiting()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_200000;
            """);
        string before = await ChecksumAsync(connectionString);
        await using var holder = new MySqlConnection(connectionString);
        string waiting = await InterruptedRun.KillWithAChunkWaitingAsync(uri, Alter, "1", Probe(connectionString, holder), async osc =>
        {
            var refused = await OscRunner.RunAsync("cleanup", uri, "--table", "t");
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("in progress: session ", refused.Stderr, StringComparison.Ordinal);
            Assert.Contains("holds its lock osc-run.", refused.Stderr, StringComparison.Ordinal);
            Assert.Contains("(KILL ", refused.Stderr, StringComparison.Ordinal);
            Assert.False(osc.HasExited, "the live run must go on");
            Assert.Equal("t_osc_log,t_osc_new", await LeftoversAsync(connectionString));
        });

        // The killed run's chunk still waits on our row lock, and holds the shadow: the DROP would wait behind it. Our
        // transaction holds the shadow too: it ends once the cleanup has ended the chunk.
        var cleaning = OscRunner.RunAsync("cleanup", uri, "--table", "t", "--json");
        await InterruptedRun.WaitUntilGoneAsync(Probe(connectionString, holder), waiting, cleaning);
        await using (var rollback = new MySqlCommand("ROLLBACK", holder))
        {
            await rollback.ExecuteNonQueryAsync();
        }

        var cleaned = await cleaning;
        Assert.True(cleaned.ExitCode == 0, cleaned.Stderr);
        Assert.Contains(cleaned.Json.GetProperty("notes").EnumerateArray(), n => n.GetString()!.StartsWith($"Ended session {waiting}, ", StringComparison.Ordinal));
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("0", await ScalarAsync(connectionString, $"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {waiting}"));
        Assert.Equal(before, await ChecksumAsync(connectionString));
    }

    [Fact]
    public async Task A_signal_with_cleanup_on_abort_leaves_nothing_of_ours()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_5000;
            """);
        string before = await ChecksumAsync(connectionString);
        var (exitCode, _) = await InterruptedRun.SignalWhileCopyingAsync(uri, Alter, "TERM", () => CheckpointRowsAsync(connectionString), "--cleanup-on-abort");

        Assert.Equal(130, exitCode);
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal(before, await ChecksumAsync(connectionString));
        await AssertNothingHeldAsync(connectionString);
    }

    /// <summary>
    /// How the kill helper sees this engine: <paramref name="holder"/> keeps row 150,000 of the shadow inserted and
    /// uncommitted, so the chunk that reaches it waits on the row lock.
    /// </summary>
    private static KilledRunProbe Probe(string connectionString, MySqlConnection holder) => new(
        () => CheckpointRowsAsync(connectionString),
        () => CheckpointWatermarkAsync(connectionString),
        async () =>
        {
            await holder.OpenAsync();
            await using var hold = new MySqlCommand("START TRANSACTION; INSERT INTO t_osc_new (id, k, c) VALUES (150000, 0, 'held')", holder);
            await hold.ExecuteNonQueryAsync();
        },
        () => ScalarAsync(connectionString,
            "SELECT COALESCE(MIN(trx_mysql_thread_id), '') FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE 'INSERT INTO %`t_osc_new`%'"),
        async session => await ScalarAsync(connectionString, $"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {session}") != "0",
        async () => await ScalarAsync(connectionString,
            "SELECT JSON_EXTRACT(value, CONCAT('$.copiedAhead[', JSON_LENGTH(value, '$.copiedAhead') - 1, '].through')) FROM t_osc_log WHERE id = 2") == "null");

    /// <summary>Interrupts a migration mid-copy once it has checkpointed; its shadow and bookkeeping table stay.</summary>
    private static async Task StopWhileCopyingAsync(string connectionString, string uri)
    {
        await InterruptedRun.StopWhileCopyingAsync(uri, Alter, () => CheckpointRowsAsync(connectionString));
        Assert.Equal("t_osc_log,t_osc_new", await LeftoversAsync(connectionString));
    }

    /// <summary>No lock, run lock or replication stream of ours is left on the server.</summary>
    private static async Task AssertNothingHeldAsync(string connectionString)
    {
        string database = new MySqlConnectionStringBuilder(connectionString).Database;
        Assert.Equal("1", await ScalarAsync(connectionString, $"SELECT IS_FREE_LOCK('osc-run.{database}.t')"));
        Assert.Equal("1", await ScalarAsync(connectionString, $"SELECT IS_FREE_LOCK('osc.{database}.t')"));

        // Every connection osc opened is closed (the server may take a moment to notice the process is gone).
        await MySqlConnection.ClearAllPoolsAsync();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string open;
        while ((open = await ScalarAsync(connectionString, $"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{database}' AND ID <> CONNECTION_ID()")) != "0"
               && DateTime.UtcNow < deadline)
        {
            await MySqlConnection.ClearAllPoolsAsync();
            await Task.Delay(100);
        }

        Assert.Equal("0", open);
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SET SESSION lock_wait_timeout = 2; LOCK TABLES t WRITE; UNLOCK TABLES;", connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>The first key column of the last checkpoint's watermark, once the first checkpoint exists (single-column integer keys).</summary>
    private static async Task<long> CheckpointWatermarkAsync(string connectionString) =>
        long.Parse(await ScalarAsync(connectionString, "SELECT COALESCE(JSON_VALUE(value, '$.watermark[0].value'), '0') FROM t_osc_log WHERE id = 2"), CultureInfo.InvariantCulture);

    /// <summary>Rows the stored checkpoint records as copied, or -1 when there is no checkpoint yet.</summary>
    private static async Task<long> CheckpointRowsAsync(string connectionString)
    {
        try
        {
            string rows = await ScalarAsync(connectionString, "SELECT JSON_VALUE(value, '$.rowsCopied') FROM t_osc_log WHERE id = 2");
            return rows.Length == 0 ? -1 : long.Parse(rows, CultureInfo.InvariantCulture);
        }
        catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchTable)
        {
            return -1;
        }
    }

    private static Task<string> ColumnTypeAsync(string connectionString) =>
        ScalarAsync(connectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'");

    private static Task<string> ChecksumAsync(string connectionString) =>
        ScalarAsync(connectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t");

    private static Task<string> LeftoversAsync(string connectionString) =>
        ScalarAsync(connectionString, "SELECT COALESCE(GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME), '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'");

    private static async Task<List<string>> BinaryLogsAsync(string connectionString)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SHOW BINARY LOGS", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var files = new List<string>();
        while (await reader.ReadAsync())
        {
            files.Add(reader.GetString(0));
        }

        return files;
    }

    /// <summary>The result object that ends --json output, after the progress lines (written indented or on one line).</summary>
    private static JsonElement LastJsonLine(string stdout)
    {
        string text = stdout.TrimEnd();
        int start = text.EndsWith('}') && text.LastIndexOf("\n{\n", StringComparison.Ordinal) is int indented and >= 0
            ? indented + 1
            : text.LastIndexOf('\n') + 1;
        return JsonDocument.Parse(text[start..]).RootElement;
    }

    private async Task<(string ConnectionString, string Uri)> DatabaseAsync(string setup)
    {
        string connectionString = await servers.NewMySqlDatabaseAsync("resume");
        var builder = new MySqlConnectionStringBuilder(connectionString);
        await ExecuteAsync(connectionString, setup);
        return (connectionString, $"mysql://{builder.UserID}:{builder.Password}@{builder.Server}:{builder.Port}/{builder.Database}");
    }
}
