using System.Globalization;
using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.Cli;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.Postgres.Replication;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>
/// Checkpoints, --resume and stopping on a real PostgreSQL 15: `osc alter --execute` killed (-9) or signalled mid-run,
/// then resumed from its permanent slot and its checkpoint, or cleaned up, with the application writing throughout.
/// </summary>
[Collection("servers")]
public sealed class PostgresResumeTests(ServersFixture servers, ITestOutputHelper output)
{
    private const string Alter = "ALTER COLUMN k TYPE bigint";

    private const string OurTables = "SELECT coalesce(string_agg(relname, ',' ORDER BY relname), '') FROM pg_class WHERE relname LIKE 't\\_osc\\_%' AND relkind = 'r'";

    // With several workers, chunks beyond the watermark finish before the kill too: the resume keeps them.
    [Theory]
    [InlineData("1")]
    [InlineData("3")]
    public async Task Kill_9_during_the_copy_under_writes_then_resume_finishes_from_the_slot_without_recopying_the_checkpointed_chunks(string workers)
    {
        const int rows = 200_000;
        var (connectionString, uri) = await DatabaseAsync(rows);
        using var stop = new CancellationTokenSource();
        Task<Writes> load = Task.Run(() => Writes.RunAsync(connectionString, rows, stop.Token));

        await using var holder = new NpgsqlConnection(connectionString);
        string waiting = await InterruptedRun.KillWithAChunkWaitingAsync(uri, Alter, workers, Probe(connectionString, holder));

        Assert.Equal("integer", await ColumnTypeAsync(connectionString));
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));
        // The slot never confirms more than the checkpoint records: everything after it is still in the slot.
        Assert.Equal("True", await ScalarAsync(connectionString, """
            SELECT s.confirmed_flush_lsn <= (SELECT (value::jsonb ->> 'position')::pg_lsn FROM t_osc_log WHERE id = 2)
            FROM pg_replication_slots s WHERE s.slot_name LIKE 'osc\_t\_%' AND s.database = current_database()
            """));

        // The copy resumes after the checkpoint's watermark (below the held key); with several workers the chunks
        // after the held one are recorded as copied too, and the resume skips them.
        long watermark = await CheckpointWatermarkAsync(connectionString);
        Assert.InRange(watermark, 20_000, 149_999);
        long checkpointed = await CheckpointRowsAsync(connectionString);

        // The killed run's waiting chunk outlives it: its backend notices the lost client only when it answers. Left
        // alone it would commit rows read before the kill once our transaction ends, in the middle of the resumed run;
        // the resume must end it first. Our transaction ends once it has, so the resumed copy can pass the held key.
        var resuming = OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume", "--json");
        await InterruptedRun.WaitUntilGoneAsync(Probe(connectionString, holder), waiting, resuming);
        await using (var rollback = new NpgsqlCommand("ROLLBACK", holder))
        {
            await rollback.ExecuteNonQueryAsync();
        }

        var resumed = await resuming;
        await Task.Delay(300);
        await stop.CancelAsync();
        Writes writes = await load;

        output.WriteLine(resumed.Stderr);
        Assert.True(resumed.ExitCode == 0, resumed.Stderr + resumed.Stdout);
        IReadOnlyList<JsonElement> events = LiveOscRun.ParseAll(resumed.Stdout + "\n");
        JsonElement done = events[^1];
        output.WriteLine(done.ToString());
        Assert.Contains(done.GetProperty("notes").EnumerateArray(), n => n.GetString()!.StartsWith($"Ended session {waiting}, ", StringComparison.Ordinal));
        long copied = done.GetProperty("rowsCopied").GetInt64();
        long before = done.GetProperty("resumedAfterRows").GetInt64();
        // Copy and replay converge by themselves; a repaired chunk would mean the copy read past a replayed commit.
        Assert.Equal(0, done.GetProperty("repairedChunks").GetInt32());
        Assert.True(before >= 20_000, $"the resume started from the checkpoint's {before:N0} rows");
        Assert.True(copied < rows, $"the resumed run copied {copied:N0} rows, as many as the table: finished chunks were copied again");
        // Rows the checkpoint records as copied, up to its watermark and beyond it, are not copied again.
        Assert.True(copied <= rows - checkpointed + writes.KeysChanged + 100,
            $"the resumed run copied {copied:N0} rows; the checkpoint had {checkpointed:N0} of the {rows:N0} (watermark {watermark:N0}) and the load changed {writes.KeysChanged:N0} keys");
        Assert.Equal("bigint", await ColumnTypeAsync(connectionString));
        Assert.Equal(IndexesBefore, await IndexesAsync(connectionString));
        Assert.Equal("t_osc_old", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("", await LeftoversAsync(connectionString));
        output.WriteLine($"load: {writes.Transactions} transactions acknowledged, {writes.Failed} failed");
        Assert.True(writes.Transactions > 50, "the load must write through the kill and the resume");
        await writes.AssertMatchesAsync(connectionString);
    }

    [Fact]
    public async Task Kill_9_while_the_swap_holds_its_lock_leaves_the_original_serving_and_cleanup_removes_everything()
    {
        var (connectionString, uri) = await DatabaseAsync(20_000);
        using var beforeSwap = new BeforeCutoverHold();
        const string Others = "SELECT count(*) || ':' || sum(hashtext(id || '|' || k || '|' || c)) FROM t WHERE id <> 5";
        string others = await ScalarAsync(connectionString, Others);
        string k5 = await ScalarAsync(connectionString, "SELECT k + 1 FROM t WHERE id = 5");
        await using var writer = new NpgsqlConnection(connectionString);
        await writer.OpenAsync();
        await using var blocker = new NpgsqlConnection(connectionString);
        await blocker.OpenAsync();
        await using (var osc = OscProcess.Start(uri, "--table", "t", "--alter", Alter, "--execute", "--hooks-path", beforeSwap.Path, "--cut-over-lock-timeout-seconds", "30"))
        {
            await beforeSwap.WaitUntilHeldAsync(osc);
            // An open write: the swap catches up (nothing is committed yet), then waits for it for ACCESS EXCLUSIVE.
            // A row lock on the shadow will hold up the replay of that write.
            await using (var write = new NpgsqlCommand("BEGIN; UPDATE t SET k = k + 1 WHERE id = 5;", writer))
            {
                await write.ExecuteNonQueryAsync();
            }

            await using (var hold = new NpgsqlCommand("BEGIN; SELECT id FROM t_osc_new WHERE id = 5 FOR UPDATE;", blocker))
            {
                await hold.ExecuteNonQueryAsync();
            }

            beforeSwap.Release();
            await InterruptedRun.WaitForAsync(async () => await ScalarAsync(connectionString,
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LOCK TABLE \"public\".\"t\" IN ACCESS EXCLUSIVE MODE%' AND wait_event_type = 'Lock'") == "1",
                osc, "the swap waiting for the table lock");
            // Committed while the lock request waits: the lock comes after it, and the drain under the lock waits for
            // its replay, which the row lock on the shadow holds up.
            await using (var commit = new NpgsqlCommand("COMMIT", writer))
            {
                await commit.ExecuteNonQueryAsync();
            }

            await InterruptedRun.WaitForAsync(async () => await ScalarAsync(connectionString,
                    "SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted") == "1",
                osc, "the swap holding ACCESS EXCLUSIVE");
            osc.Kill();
        }

        await using (var rollback = new NpgsqlCommand("ROLLBACK", blocker))
        {
            await rollback.ExecuteNonQueryAsync();
        }

        // The original is intact and takes writes once the dead swap's server process lets go.
        Assert.Equal("integer", await ColumnTypeAsync(connectionString));
        Assert.Equal(others, await ScalarAsync(connectionString, Others));
        Assert.Equal(k5, await ScalarAsync(connectionString, "SELECT k FROM t WHERE id = 5"));
        await ExecuteAsync(connectionString, "SET lock_timeout = '30s'; INSERT INTO t (id, k, c) VALUES (300001, 5, 'after the kill')");

        // Cleanup takes everything of ours away: shadow, bookkeeping table, slot and publication.
        var cleanup = await OscRunner.RunAsync("cleanup", uri, "--table", "t");
        Assert.True(cleanup.ExitCode == 0, cleanup.Stderr);
        Assert.Equal("", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("20001", await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
    }

    [Fact]
    public async Task Kill_9_during_the_cut_over_leaves_the_original_serving_and_resume_finishes()
    {
        var (connectionString, uri) = await DatabaseAsync(20_000);
        string checksum = await ChecksumAsync(connectionString);

        // A reader's open transaction holds ACCESS SHARE on the table, so the swap waits for its ACCESS EXCLUSIVE lock
        // inside its transaction: the moment to kill it. (The reader has no transaction id: it does not hold up the
        // slot's creation, and SHARE, which verification takes, does not conflict with it.)
        await using var reader = new NpgsqlConnection(connectionString);
        await reader.OpenAsync();
        await using (var begin = new NpgsqlCommand("BEGIN; SELECT count(*) FROM t WHERE id = 1;", reader))
        {
            await begin.ExecuteNonQueryAsync();
        }

        await using (var osc = OscProcess.Start(uri, "--table", "t", "--alter", Alter, "--execute", "--cut-over-lock-timeout-seconds", "30"))
        {
            await InterruptedRun.WaitForAsync(async () => await ScalarAsync(connectionString,
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LOCK TABLE \"public\".\"t\" IN ACCESS EXCLUSIVE MODE%' AND wait_event_type = 'Lock'") == "1",
                osc, "the swap waiting for the table lock");
            osc.Kill();
        }

        await using (var commit = new NpgsqlCommand("COMMIT", reader))
        {
            await commit.ExecuteNonQueryAsync();
        }

        // The original is intact and takes writes (the dead swap's lock request goes when its server process notices).
        Assert.Equal("integer", await ColumnTypeAsync(connectionString));
        Assert.Equal(checksum, await ChecksumAsync(connectionString));
        await ExecuteAsync(connectionString, "SET lock_timeout = '30s'; INSERT INTO t (id, k, c) VALUES (300001, 5, 'after the kill')");
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));
        Assert.NotEqual("", await LeftoversAsync(connectionString));

        var rerun = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute");
        Assert.Equal(1, rerun.ExitCode);
        Assert.Contains("--resume", rerun.Stderr, StringComparison.Ordinal);

        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint", await ColumnTypeAsync(connectionString));
        Assert.Equal("20001", await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
        Assert.Equal("after the kill", await ScalarAsync(connectionString, "SELECT c FROM t WHERE id = 300001"));
        Assert.Equal(IndexesBefore, await IndexesAsync(connectionString));
        Assert.Equal("0", await ScalarAsync(connectionString,
            "SELECT count(*) FROM ((SELECT id, k::int, c FROM t EXCEPT ALL SELECT id, k, c FROM t_osc_old) UNION ALL (SELECT id, k, c FROM t_osc_old EXCEPT ALL SELECT id, k::int, c FROM t)) d"));
        Assert.Equal("t_osc_old", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Fact]
    public async Task Ctrl_C_while_a_foreign_key_is_validated_after_the_swap_keeps_what_is_left_and_resume_validates_it()
    {
        var (connectionString, uri) = await DatabaseAsync(1_000);
        // A referencing table large enough that validating its key on the new table takes a while: the moment to stop.
        await ExecuteAsync(connectionString, """
            CREATE TABLE child (id bigint PRIMARY KEY, t_id bigint NOT NULL);
            INSERT INTO child SELECT g, 1 + g % 1000 FROM generate_series(1, 2000000) g;
            ALTER TABLE child ADD CONSTRAINT child_t FOREIGN KEY (t_id) REFERENCES t (id);
            ANALYZE child;
            """);
        // The validation's anti-join by a nested loop of index probes: about 2 s here instead of a hash join's 0.25 s,
        // which a quiet machine could finish between two looks at pg_stat_activity. Sessions osc opens get it.
        await ExecuteAsync(connectionString, """
            DO $$ BEGIN
              EXECUTE format('ALTER DATABASE %I SET enable_hashjoin = off', current_database());
              EXECUTE format('ALTER DATABASE %I SET enable_mergejoin = off', current_database());
            END $$;
            """);

        await using (var osc = OscProcess.Start(uri, "--table", "t", "--alter", Alter, "--execute"))
        {
            await InterruptedRun.WaitForAsync(async () => await ScalarAsync(connectionString,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE public.child VALIDATE CONSTRAINT%' AND state = 'active'") == "1", osc, "the key's validation");
            osc.Signal("INT");
            Assert.Equal(130, await osc.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains("Stopped after the swap", osc.Stderr, StringComparison.Ordinal);
        }

        // Swapped, the key on the new table enforced for new rows but not validated; the slot gone, the record kept.
        Assert.Equal("bigint", await ColumnTypeAsync(connectionString));
        Assert.Equal("t|false", await ScalarAsync(connectionString, "SELECT confrelid::regclass || '|' || convalidated FROM pg_constraint WHERE conname = 'child_t'"));
        Assert.Equal("t_osc_log,t_osc_old", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("", await LeftoversAsync(connectionString));

        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume", "--json");

        Assert.True(resumed.ExitCode == 0, resumed.Stderr + resumed.Stdout);
        Assert.True(LiveOscRun.ParseAll(resumed.Stdout)[^1].GetProperty("finishedAfterSwap").GetBoolean());
        string notes = string.Join("\n", LiveOscRun.ParseAll(resumed.Stdout)[^1].GetProperty("notes").EnumerateArray().Select(n => n.GetString()));
        Assert.Contains("Validated the foreign keys the swap had added NOT VALID: child_t on public.child.", notes, StringComparison.Ordinal);
        Assert.Equal("t|true", await ScalarAsync(connectionString, "SELECT confrelid::regclass || '|' || convalidated FROM pg_constraint WHERE conname = 'child_t'"));
        Assert.Equal("t_osc_old", await ScalarAsync(connectionString, OurTables));
    }

    [Fact]
    public async Task A_resume_with_another_alter_is_refused_and_keeps_everything_then_cleanup_removes_it_all()
    {
        var (connectionString, uri) = await DatabaseAsync(5_000);
        await StopWhileCopyingAsync(connectionString, uri);

        var refused = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE numeric", "--execute", "--resume");

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("another ALTER", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("ALTER COLUMN K TYPE BIGINT", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("ALTER COLUMN K TYPE NUMERIC", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("osc cleanup", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));
        Assert.NotEqual("", await LeftoversAsync(connectionString));

        var cleanup = await OscRunner.RunAsync("cleanup", uri, "--table", "t");
        Assert.True(cleanup.ExitCode == 0, cleanup.Stderr);
        Assert.Equal("", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("integer", await ColumnTypeAsync(connectionString));
    }

    [Fact]
    public async Task Cleanup_refuses_while_a_run_is_live_and_after_a_kill_ends_the_chunk_it_left_waiting()
    {
        var (connectionString, uri) = await DatabaseAsync(200_000);
        string before = await ChecksumAsync(connectionString);
        await using var holder = new NpgsqlConnection(connectionString);
        string waiting = await InterruptedRun.KillWithAChunkWaitingAsync(uri, Alter, "1", Probe(connectionString, holder), async osc =>
        {
            var refused = await OscRunner.RunAsync("cleanup", uri, "--table", "t");
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("in progress: backend ", refused.Stderr, StringComparison.Ordinal);
            Assert.Contains("holds its advisory lock osc-run.", refused.Stderr, StringComparison.Ordinal);
            Assert.Contains("pg_terminate_backend(", refused.Stderr, StringComparison.Ordinal);
            Assert.False(osc.HasExited, "the live run must go on");
            Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));
            Assert.NotEqual("", await LeftoversAsync(connectionString));
        });

        // The killed run's chunk still waits on our transaction, and holds the shadow: the DROP would wait behind it.
        // Our transaction holds the shadow too: it ends once the cleanup has ended the chunk.
        var cleaning = OscRunner.RunAsync("cleanup", uri, "--table", "t", "--json");
        await InterruptedRun.WaitUntilGoneAsync(Probe(connectionString, holder), waiting, cleaning);
        await using (var rollback = new NpgsqlCommand("ROLLBACK", holder))
        {
            await rollback.ExecuteNonQueryAsync();
        }

        var cleaned = await cleaning;
        Assert.True(cleaned.ExitCode == 0, cleaned.Stderr);
        Assert.Contains(cleaned.Json.GetProperty("notes").EnumerateArray(), n => n.GetString()!.StartsWith($"Ended session {waiting}, ", StringComparison.Ordinal));
        Assert.Equal("", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("0", await ScalarAsync(connectionString, $"SELECT count(*) FROM pg_stat_activity WHERE pid = {waiting}"));
        Assert.Equal(before, await ChecksumAsync(connectionString));
    }

    [Fact]
    public async Task A_resume_whose_slot_is_gone_is_refused_and_the_same_alter_spelled_otherwise_resumes_when_it_is_there()
    {
        var (connectionString, uri) = await DatabaseAsync(5_000);
        await StopWhileCopyingAsync(connectionString, uri);
        string slot = await ScalarAsync(connectionString, "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'osc\\_t\\_%' AND database = current_database()");

        // Advanced by something other than osc: the changes it skipped are in neither the shadow nor the slot.
        // The test servers commit asynchronously, and a slot advances only over flushed WAL: flush this commit.
        await ExecuteAsync(connectionString, "SET synchronous_commit = on; INSERT INTO t (id, k, c) VALUES (900001, 1, 'consumed elsewhere')");
        await WaitUntilInactiveAsync(connectionString);
        await ExecuteAsync(connectionString, $"SELECT pg_replication_slot_advance('{slot}', pg_current_wal_flush_lsn())");
        var advanced = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.Equal(1, advanced.ExitCode);
        Assert.Contains("past the checkpoint", advanced.Stderr, StringComparison.Ordinal);
        Assert.Contains("osc cleanup", advanced.Stderr, StringComparison.Ordinal);

        Assert.Equal(0, (await OscRunner.RunAsync("cleanup", uri, "--table", "t")).ExitCode);
        await StopWhileCopyingAsync(connectionString, uri);
        await WaitUntilInactiveAsync(connectionString);
        await ExecuteAsync(connectionString, $"SELECT pg_drop_replication_slot('{slot}')");
        var gone = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.Equal(1, gone.ExitCode);
        Assert.Contains($"replication slot {slot}", gone.Stderr, StringComparison.Ordinal);
        Assert.Contains("osc cleanup", gone.Stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));

        Assert.Equal(0, (await OscRunner.RunAsync("cleanup", uri, "--table", "t")).ExitCode);
        await StopWhileCopyingAsync(connectionString, uri);
        await ExecuteAsync(connectionString, "UPDATE t SET c = 'while stopped' WHERE id = 7");
        // Spelling does not matter, only the change.
        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER TABLE t alter   column k type BIGINT", "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint", await ColumnTypeAsync(connectionString));
        Assert.Equal("5001", await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
        Assert.Equal("while stopped", await ScalarAsync(connectionString, "SELECT c FROM t WHERE id = 7"));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task A_signal_stops_cleanly_keeps_the_work_and_resume_finishes(string signal)
    {
        var (connectionString, uri) = await DatabaseAsync(5_000);
        var (exitCode, stderr) = await InterruptedRun.SignalWhileCopyingAsync(uri, Alter, signal, () => CheckpointRowsAsync(connectionString));

        output.WriteLine(stderr);
        Assert.Equal(130, exitCode);
        Assert.Contains("--resume", stderr, StringComparison.Ordinal);
        Assert.Contains("osc cleanup", stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));
        Assert.Matches("^osc_t_[0-9a-f]{8},osc_t_[0-9a-f]{8}$", await LeftoversAsync(connectionString));
        await AssertNothingHeldAsync(connectionString);

        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint", await ColumnTypeAsync(connectionString));
        Assert.Equal("5000", await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
        Assert.Equal("t_osc_old", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task A_signal_with_cleanup_on_abort_leaves_nothing_of_ours(string signal)
    {
        var (connectionString, uri) = await DatabaseAsync(5_000);
        string checksum = await ChecksumAsync(connectionString);
        var (exitCode, _) = await InterruptedRun.SignalWhileCopyingAsync(uri, Alter, signal, () => CheckpointRowsAsync(connectionString), "--cleanup-on-abort");

        Assert.Equal(130, exitCode);
        Assert.Equal("", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal(checksum, await ChecksumAsync(connectionString));
        await AssertNothingHeldAsync(connectionString);
    }

    [Fact]
    public async Task A_failure_after_the_first_checkpoint_keeps_the_work_with_both_commands_and_resume_finishes()
    {
        var (connectionString, uri) = await DatabaseAsync(5_000);

        // osc's own session already exceeds the limit: the critical load stops it right after its first checkpoint.
        var failed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--critical-load", "sessions=0");

        output.WriteLine(failed.Stderr);
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("sessions", failed.Stderr, StringComparison.Ordinal);
        Assert.Contains("keeps the server's WAL", failed.Stderr, StringComparison.Ordinal);
        Assert.Contains("resume:  osc alter postgres://", failed.Stderr, StringComparison.Ordinal);
        Assert.Contains("--table t --alter 'ALTER COLUMN k TYPE bigint' --execute --resume", failed.Stderr, StringComparison.Ordinal);
        Assert.Contains("or drop: osc cleanup", failed.Stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));
        Assert.Matches("^osc_t_[0-9a-f]{8},osc_t_[0-9a-f]{8}$", await LeftoversAsync(connectionString));
        await AssertNothingHeldAsync(connectionString);

        var resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint", await ColumnTypeAsync(connectionString));
        Assert.Equal("5000", await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    /// <summary>
    /// A DBA terminates every backend of osc's (pg_terminate_backend) while the copy is held: osc's own session, which
    /// holds its run lock, is gone, so the run stops, and says the server ended its session (not "unexpected failure",
    /// which asks for a bug report); the work is kept and --resume finishes it.
    /// </summary>
    [Fact]
    public async Task Terminating_osc_s_backends_stops_the_run_with_a_clear_error_and_resume_finishes()
    {
        var (connectionString, uri) = await DatabaseAsync(3_000);
        using var flag = new FlagFile("terminate");
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--json", "--throttle-flag-file", flag.Path);
        await run.WaitForThrottledAsync("flag file", TimeSpan.FromSeconds(60));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (await CheckpointRowsAsync(connectionString) < 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "no checkpoint was saved");
            await Task.Delay(50);
        }

        await ExecuteAsync(connectionString, "INSERT INTO t VALUES (3001, 1, 'written before the terminate')");
        string terminated = await ScalarAsync(connectionString,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'osc' AND pid <> pg_backend_pid()");
        output.WriteLine($"terminated {terminated} backends");
        Assert.NotEqual("0", terminated);

        flag.Lift();
        OscRunner.Result stopped = await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));
        output.WriteLine(stopped.Stderr);
        Assert.Equal(1, stopped.ExitCode);
        Assert.Contains("Lost the connection to the server", stopped.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unexpected failure", stopped.Stderr, StringComparison.Ordinal);
        Assert.Contains("--resume", stopped.Stderr, StringComparison.Ordinal);
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));
        Assert.Equal("integer", await ColumnTypeAsync(connectionString));

        OscRunner.Result resumed = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", Alter, "--execute", "--resume");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint", await ColumnTypeAsync(connectionString));
        Assert.Equal("3001", await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    /// <summary>Interrupts a migration mid-copy once it has checkpointed; its shadow and bookkeeping table stay.</summary>
    private static async Task StopWhileCopyingAsync(string connectionString, string uri)
    {
        await InterruptedRun.StopWhileCopyingAsync(uri, Alter, () => CheckpointRowsAsync(connectionString));
        Assert.Equal("t_osc_log,t_osc_new", await ScalarAsync(connectionString, OurTables));
    }

    /// <summary>No session of osc's is left (walsender included), its run lock is free, and the table can be locked at once.</summary>
    private static async Task AssertNothingHeldAsync(string connectionString)
    {
        string database = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        string slot = new PostgresReplicationNames(database, new TableName("public", "t")).Slot;
        NpgsqlConnection.ClearAllPools();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string open;
        while ((open = await ScalarAsync(connectionString, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'osc' AND datname = current_database() AND pid <> pg_backend_pid()")) != "0"
               && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal("0", open);
        Assert.Equal("", await ScalarAsync(connectionString,
            "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE active AND slot_name LIKE 'osc\\_%' AND database = current_database()"));
        Assert.Equal("True", await ScalarAsync(connectionString,
            $"SELECT pg_try_advisory_lock(hashtextextended('osc-run.{slot}', 0)) AND pg_advisory_unlock(hashtextextended('osc-run.{slot}', 0))"));
        await ExecuteAsync(connectionString, "SET lock_timeout = '2s'; BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; COMMIT;");
    }

    /// <summary>The walsender of a stopped run goes a moment after its client: until then the slot is active.</summary>
    private static async Task WaitUntilInactiveAsync(string connectionString)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await ScalarAsync(connectionString, "SELECT count(*) FROM pg_replication_slots WHERE active AND slot_name LIKE 'osc\\_%' AND database = current_database()") != "0")
        {
            Assert.True(DateTime.UtcNow < deadline, "the slot stayed active");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// How the kill helper sees this engine: <paramref name="holder"/> keeps row 150,000 of the shadow inserted and
    /// uncommitted, so the chunk that reaches it waits for that transaction.
    /// </summary>
    private static KilledRunProbe Probe(string connectionString, NpgsqlConnection holder) => new(
        () => CheckpointRowsAsync(connectionString),
        () => CheckpointWatermarkAsync(connectionString),
        async () =>
        {
            await holder.OpenAsync();
            await using var hold = new NpgsqlCommand("BEGIN; INSERT INTO t_osc_new (id, k, c) VALUES (150000, 0, 'held')", holder);
            await hold.ExecuteNonQueryAsync();
        },
        () => ScalarAsync(connectionString,
            "SELECT coalesce(min(pid)::text, '') FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO %t_osc_new%'"),
        async pid => await ScalarAsync(connectionString, $"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}") != "0",
        async () => await ScalarAsync(connectionString,
            "SELECT coalesce(value::jsonb -> 'copiedAhead' -> -1 -> 'through' = 'null'::jsonb, false) FROM t_osc_log WHERE id = 2") == "True");

    /// <summary>The first key column of the last checkpoint's watermark, once the first checkpoint exists (single-column integer keys).</summary>
    private static async Task<long> CheckpointWatermarkAsync(string connectionString) =>
        long.Parse(await ScalarAsync(connectionString, "SELECT coalesce(value::jsonb -> 'watermark' -> 0 ->> 'value', '0') FROM t_osc_log WHERE id = 2"), CultureInfo.InvariantCulture);

    /// <summary>Rows the stored checkpoint records as copied, or -1 when there is no checkpoint yet.</summary>
    private static async Task<long> CheckpointRowsAsync(string connectionString)
    {
        try
        {
            string rows = await ScalarAsync(connectionString, "SELECT value::jsonb ->> 'rowsCopied' FROM t_osc_log WHERE id = 2");
            return rows.Length == 0 ? -1 : long.Parse(rows, CultureInfo.InvariantCulture);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return -1;
        }
    }

    private static async Task<long> ShadowRowsAsync(string connectionString)
    {
        try
        {
            return long.Parse(await ScalarAsync(connectionString, "SELECT count(*) FROM t_osc_new"), CultureInfo.InvariantCulture);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return 0;
        }
    }

    // The plain index is dropped from the shadow for the copy and rebuilt from the recorded layout by the resumed run;
    // the swap gives both indexes the original's names, also recorded there.
    private const string IndexesBefore = "t_k: CREATE INDEX t_k ON public.t USING btree (k); t_pkey: CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)";

    private static Task<string> IndexesAsync(string connectionString) =>
        ScalarAsync(connectionString, "SELECT string_agg(indexname || ': ' || indexdef, '; ' ORDER BY indexname) FROM pg_indexes WHERE tablename = 't'");

    private static Task<string> ColumnTypeAsync(string connectionString) =>
        ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'");

    private static Task<string> ChecksumAsync(string connectionString) =>
        ScalarAsync(connectionString, "SELECT count(*) || ':' || coalesce(sum(hashtext(id || '|' || k || '|' || c)), 0) FROM t");

    private async Task<(string ConnectionString, string Uri)> DatabaseAsync(int rows)
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("resume");
        string uri = PgSql.OscUri(connectionString);
        await ExecuteAsync(connectionString, $"""
            CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, c text);
            CREATE INDEX t_k ON t (k);
            INSERT INTO t SELECT g, g % 97, 'row-' || g FROM generate_series(1, {rows}) g;
            ANALYZE t;
            """);
        return (connectionString, uri);
    }

    /// <summary>
    /// The application: one-statement transactions inserting, updating, moving (changing the key of) and deleting
    /// rows, with a model of what every acknowledged one left. A transaction that fails is not modelled.
    /// </summary>
    private sealed class Writes
    {
        private readonly Dictionary<long, (long K, string C)> _rows = [];
        private readonly Random _random = new(11);
        private long _nextId = 10_000_000;

        public int Transactions { get; private set; }

        public int Failed { get; private set; }

        public int Inserted { get; private set; }

        /// <summary>Keys added or removed by acknowledged writes (an insert or a delete one, a key change two).</summary>
        public int KeysChanged { get; private set; }

        public static async Task<Writes> RunAsync(string connectionString, int rows, CancellationToken cancellationToken)
        {
            var writes = new Writes();
            for (long id = 1; id <= rows; id++)
            {
                writes._rows[id] = (id % 97, "row-" + id.ToString(CultureInfo.InvariantCulture));
            }

            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            var existing = writes._rows.Keys.ToList();
            while (!cancellationToken.IsCancellationRequested)
            {
                long target = existing[writes._random.Next(existing.Count)];
                int op = writes._random.Next(100);
                (string sql, Action apply) = !writes._rows.TryGetValue(target, out var row) || op < 25 ? writes.Insert(existing)
                    : op < 65 ? ($"UPDATE t SET k = k + 1, c = c || '+' WHERE id = {target}", () => writes._rows[target] = (row.K + 1, row.C + "+"))
                    : op < 80 ? writes.Move(target, row, existing)
                    : ($"DELETE FROM t WHERE id = {target}", () => writes._rows.Remove(target));
                try
                {
                    await using var command = new NpgsqlCommand(sql, connection);
                    await command.ExecuteNonQueryAsync(CancellationToken.None);
                    apply();
                    writes.Transactions++;
                    writes.KeysChanged += sql.StartsWith("INSERT", StringComparison.Ordinal) || sql.StartsWith("DELETE", StringComparison.Ordinal) ? 1
                        : sql.Contains("SET id =", StringComparison.Ordinal) ? 2 : 0;
                }
                catch (PostgresException)
                {
                    writes.Failed++;
                }

                await Task.Delay(2, CancellationToken.None);
            }

            return writes;
        }

        private (string, Action) Insert(List<long> existing)
        {
            long id = _nextId++;
            return ($"INSERT INTO t (id, k, c) VALUES ({id}, {id % 13}, 'new-{id}')", () =>
            {
                _rows[id] = (id % 13, $"new-{id}");
                existing.Add(id);
                Inserted++;
            });
        }

        private (string, Action) Move(long target, (long K, string C) row, List<long> existing)
        {
            long moved = _nextId++;
            return ($"UPDATE t SET id = {moved} WHERE id = {target}", () =>
            {
                _rows.Remove(target);
                _rows[moved] = row;
                existing.Add(moved);
            });
        }

        public async Task AssertMatchesAsync(string connectionString)
        {
            var actual = new Dictionary<long, (long K, string C)>();
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT id, k, c FROM t", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                actual[reader.GetInt64(0)] = (reader.GetInt64(1), reader.GetString(2));
            }

            ModelAssert.Matches(_rows, actual);
        }
    }
}
