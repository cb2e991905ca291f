using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>`osc alter --execute` end to end on a real PostgreSQL 15, with the application writing all the way through.</summary>
[Collection("servers")]
public sealed class PostgresOnlineAlterTests(ServersFixture servers, ITestOutputHelper output)
{
    private const int Rows = 20_000;

    [Fact]
    public async Task An_online_alter_under_writes_keeps_every_acknowledged_write_and_nothing_else_and_leaves_no_slot_or_shadow()
    {
        var (connectionString, uri) = await DatabaseAsync();
        using var stop = new CancellationTokenSource();
        var model = await Workload.LoadAsync(connectionString);
        Task<Workload> load = Task.Run(() => model.RunAsync(connectionString, stop.Token));

        var result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint, ADD COLUMN extra int NOT NULL DEFAULT 7",
            "--execute", "--json", "--chunk-time-millis", "50", "--max-write-latency-millis", "2000");
        await Task.Delay(300);
        await stop.CancelAsync();
        Workload writes = await load;

        output.WriteLine(result.Stdout[Math.Max(0, result.Stdout.LastIndexOf("\n{", StringComparison.Ordinal))..] + result.Stderr);
        output.WriteLine($"load: {writes.Transactions} transactions acknowledged, {writes.Failed} failed");
        Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
        Assert.True(writes.Transactions > 100, "the load must write through the migration");
        Assert.Equal("bigint", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
        Assert.Equal("7", await ScalarAsync(connectionString, "SELECT min(extra) FROM t"));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname = 't_osc_new'"));
        Assert.Equal("", await LeftoversAsync(connectionString));
        // The new table went live with planner statistics (autovacuum, off on the shadow, gathered none) and autovacuum on.
        Assert.NotEqual("0", await ScalarAsync(connectionString, "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 't' AND attname = 'extra'"));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT coalesce(reloptions::text, '') FROM pg_class WHERE oid = 't'::regclass"));
        await writes.AssertMatchesAsync(connectionString);
        // Copy and replay converge by themselves; a repaired chunk would mean the copy read past a replayed commit.
        JsonElement done = LiveOscRun.ParseAll(result.Stdout + "\n")[^1];
        Assert.Equal(0, done.GetProperty("repairedChunks").GetInt32());
        Assert.False(done.GetProperty("finishedAfterSwap").GetBoolean());
        // Verification's SHARE lock held writes too, for less than the whole run.
        Assert.InRange(done.GetProperty("verificationWritesBlockedMillis").GetDouble(), 0.01, done.GetProperty("totalSeconds").GetDouble() * 1000);

        // The swap says where its hold went: the drain's waits, the swap's statements, the commit, in that order,
        // adding up to no more than the hold (each part and the hold are rounded to 0.1 ms, hence the slack).
        double held = done.GetProperty("writesBlockedMillis").GetDouble();
        var steps = done.GetProperty("writesBlockedSteps").EnumerateArray()
            .Select(e => (Name: e.GetProperty("step").GetString()!, Millis: e.GetProperty("millis").GetDouble())).ToList();
        Assert.True(held > 0, $"hold {held} ms");
        Assert.True(done.GetProperty("lockWaitMillis").GetDouble() >= 0);
        Assert.All(steps, s => Assert.True(s.Millis >= 0, s.Name));
        Assert.InRange(steps.Sum(s => s.Millis), 0, held + 0.05 * (steps.Count + 1));
        Assert.StartsWith("drain: ", steps[0].Name, StringComparison.Ordinal);
        Assert.Contains(steps, s => s.Name.StartsWith("renames and carry-overs", StringComparison.Ordinal));
        Assert.Equal("commit", steps[^1].Name);
    }

    [Fact]
    public async Task A_primary_key_changed_in_the_rebuild_under_writes_keeps_every_acknowledged_write_and_only_the_new_key()
    {
        var (connectionString, uri) = await DatabaseAsync();
        using var stop = new CancellationTokenSource();
        var model = await Workload.LoadAsync(connectionString);
        Task<Workload> load = Task.Run(() => model.RunAsync(connectionString, stop.Token));

        // With a rewrite in the same ALTER the key changes in the rebuild; the new key does not start with id, which
        // the replay still matches rows by.
        var result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint, DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (k, id)",
            "--execute", "--json", "--chunk-time-millis", "50", "--max-write-latency-millis", "2000");
        await Task.Delay(300);
        await stop.CancelAsync();
        Workload writes = await load;

        output.WriteLine(result.Stdout[Math.Max(0, result.Stdout.LastIndexOf("\n{", StringComparison.Ordinal))..] + result.Stderr);
        output.WriteLine($"load: {writes.Transactions} transactions acknowledged, {writes.Failed} failed");
        Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
        Assert.True(writes.Transactions > 100, "the load must write through the migration");
        Assert.Equal("rebuild", LiveOscRun.ParseAll(result.Stdout + "\n")[^1].GetProperty("mode").GetString());
        // Only the key the ALTER asked for: nothing osc needed on the way is left on the new table.
        Assert.Equal("t_pkey PRIMARY KEY (k, id)", await ScalarAsync(connectionString,
            "SELECT string_agg(c.relname || ' ' || coalesce(pg_get_constraintdef(k.oid), pg_get_indexdef(i.indexrelid)), '; ') FROM pg_index i " +
            "JOIN pg_class c ON c.oid = i.indexrelid LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid WHERE i.indrelid = 't'::regclass"));
        Assert.Equal("", await LeftoversAsync(connectionString));
        await writes.AssertMatchesAsync(connectionString);
    }

    [Fact]
    public async Task Killing_osc_s_walsender_during_the_run_reconnects_from_the_slot_and_keeps_every_acknowledged_write()
    {
        var (connectionString, uri) = await DatabaseAsync();
        using var stop = new CancellationTokenSource();
        var model = await Workload.LoadAsync(connectionString);
        Task<Workload> load = Task.Run(() => model.RunAsync(connectionString, stop.Token));

        // The swap waits for the flag to go, so the kills land in the run however fast the machine copies.
        using var postpone = new FlagFile("pg-walsender");
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute", "--json", "--native", "off",
            "--chunk-time-millis", "50", "--postpone-cut-over-flag-file", postpone.Path);
        int kills = 0;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (kills < 3 && !run.Completion.IsCompleted && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500);
            kills += int.Parse(await ScalarAsync(connectionString,
                "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name LIKE 'osc\\_%' AND database = current_database() AND active_pid IS NOT NULL"),
                CultureInfo.InvariantCulture);
        }

        postpone.Lift();
        OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));
        await Task.Delay(300);
        await stop.CancelAsync();
        Workload writes = await load;

        output.WriteLine($"{kills} walsenders ended; load: {writes.Transactions} transactions acknowledged, {writes.Failed} failed");
        Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
        Assert.True(kills >= 2, $"the walsender was ended {kills} times");
        Assert.True(writes.Transactions > 100, "the load must write through the migration");
        Assert.Equal("bigint", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
        Assert.Equal("", await LeftoversAsync(connectionString));
        await writes.AssertMatchesAsync(connectionString);
    }

    [Fact]
    public async Task A_unique_constraint_over_duplicates_stops_before_the_swap_and_removes_everything_it_created()
    {
        var (connectionString, uri) = await DatabaseAsync();
        await ExecuteAsync(connectionString, "UPDATE t SET k = 1 WHERE id IN (1, 2, 3)");
        string before = await ScalarAsync(connectionString, "SELECT count(*) || ':' || sum(hashtext(id || '|' || k)) FROM t");

        // Rebuilt: with --native auto the unique index would be built concurrently, and fail there (PostgresNativeAlterTests).
        var result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD CONSTRAINT t_k_unique UNIQUE (k)", "--execute", "--native", "off");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Verification failed", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("--resume", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await ScalarAsync(connectionString, "SELECT count(*) || ':' || sum(hashtext(id || '|' || k)) FROM t"));
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT count(*) FROM pg_constraint WHERE conname = 't_k_unique'"));
        // No slot, publication or table of ours: a resume would only meet the same duplicates.
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT coalesce(string_agg(relname, ','), '') FROM pg_class WHERE relname LIKE 't\\_osc\\_%'"));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Theory]
    [InlineData("UNIQUE (v)", 200_000)]
    // An exclusion constraint collides like a unique key, and the server reports it as another error. Its GiST index
    // makes the copy slower: fewer rows.
    [InlineData("EXCLUDE USING gist (int4range(v, v + 1) WITH &&)", 40_000)]
    // ON CONFLICT does not arbitrate a deferrable constraint: in the shadow during the copy, a moved value would fail the chunk.
    [InlineData("UNIQUE (v) DEFERRABLE INITIALLY DEFERRED", 100_000)]
    public async Task Values_of_a_unique_key_moving_between_rows_during_the_copy_all_reach_the_new_table(string constraint, int rows)
    {
        // Each transaction frees a row's value and gives it to a new row elsewhere in the key space. Were the key in the
        // shadow during the copy, a chunk could meet the freed value there (the replay of the update waits for that
        // chunk) and skip the new row, which verification would then find and copy again. The key is built after the
        // copy instead: no chunk differs.
        string connectionString = await servers.NewPostgresDatabaseAsync("moves");
        string uri = PgSql.OscUri(connectionString);
        await ExecuteAsync(connectionString, $"""
            CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, pad text NOT NULL DEFAULT '', {constraint});
            INSERT INTO t (id, v) SELECT g * 2, g FROM generate_series(1, {rows}) g;
            ANALYZE t;
            """);
        const string Constraints = "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ', ' ORDER BY conname) FROM pg_constraint WHERE conrelid = 't'::regclass";
        string constraints = await ScalarAsync(connectionString, Constraints);
        using var stop = new CancellationTokenSource();
        Task<int> moves = Task.Run(() => MoveValuesAsync(connectionString, rows, stop.Token));
        using var postpone = new FlagFile("pg-unique-moves");
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", "ALTER COLUMN pad TYPE varchar(200)", "--native", "off",
            "--execute", "--json", "--chunk-time-millis", "100", "--postpone-cut-over-flag-file", postpone.Path);
        await run.WaitForEventAsync(e => e.TryGetProperty("phase", out var phase) && phase.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
            TimeSpan.FromMinutes(3), "the postponed swap");

        // The load stops before the swap: the old and the new table must then hold the same rows.
        await stop.CancelAsync();
        int moved = await moves;
        postpone.Lift();
        OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromMinutes(3));

        output.WriteLine($"{moved} values moved; {result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]}");
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.True(moved > 100, $"only {moved} values moved during the run");
        const string Digest = "SELECT count(*) || ':' || sum(hashtext(id || '|' || v)) FROM ";
        Assert.Equal(await ScalarAsync(connectionString, Digest + "t_osc_old"), await ScalarAsync(connectionString, Digest + "t"));
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal(0, LiveOscRun.ParseAll(result.Stdout)[^1].GetProperty("repairedChunks").GetInt32());
        // The key is back, under its own name and with its own attributes.
        Assert.Equal(constraints, await ScalarAsync(connectionString, Constraints));
    }

    [Fact]
    public async Task A_new_deferrable_unique_constraint_meeting_a_moved_value_stops_the_run_with_the_reason_and_the_original_untouched()
    {
        // v is unique in practice, and the ALTER makes it a deferrable key: a key the original does not enforce stays
        // in the shadow during the copy, and ON CONFLICT cannot step around a deferrable one.
        string connectionString = await servers.NewPostgresDatabaseAsync("deferrable");
        string uri = PgSql.OscUri(connectionString);
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, pad text NOT NULL DEFAULT '');
            INSERT INTO t (id, v) SELECT g * 2, g FROM generate_series(1, 100000) g;
            ANALYZE t;
            """);
        using var stop = new CancellationTokenSource();
        Task<int> moves = Task.Run(() => MoveValuesAsync(connectionString, 100_000, stop.Token));
        using var postpone = new FlagFile("pg-deferrable-moves");
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", "ADD CONSTRAINT t_v_key UNIQUE (v) DEFERRABLE INITIALLY DEFERRED", "--native", "off",
            "--execute", "--json", "--chunk-time-millis", "100", "--postpone-cut-over-flag-file", postpone.Path);
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (!run.Completion.IsCompleted && !run.JsonEvents.Any(e => e.TryGetProperty("phase", out var phase) && phase.GetString()!.StartsWith("postponed", StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, "the run neither stopped nor reached the postponed swap");
            await Task.Delay(50);
        }

        await stop.CancelAsync();
        int moved = await moves;
        postpone.Lift();
        OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromMinutes(3));
        output.WriteLine($"{moved} values moved; exit {result.ExitCode}: {result.Stderr}");

        const string Digest = "SELECT count(*) || ':' || sum(hashtext(id || '|' || v)) FROM ";
        if (result.ExitCode == 0)
        {
            // No chunk met a moved value: then the tables must match.
            Assert.Equal(await ScalarAsync(connectionString, Digest + "t_osc_old"), await ScalarAsync(connectionString, Digest + "t"));
            return;
        }

        Assert.Contains("collided on the deferrable unique constraint", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("NOT DEFERRABLE", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT coalesce(string_agg(conname, ','), '') FROM pg_constraint WHERE conrelid = 't'::regclass AND contype = 'u'"));
        OscRunner.Result cleanup = await OscRunner.RunAsync("cleanup", uri, "--table", "t");
        Assert.True(cleanup.ExitCode == 0, cleanup.Stderr);
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    /// <summary>Moves values of t.v between rows until <paramref name="stop"/> (<see cref="UniqueValueMoves"/>); returns how many moved.</summary>
    private static async Task<int> MoveValuesAsync(string connectionString, int rows, CancellationToken stop)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        return await UniqueValueMoves.RunAsync(connection, rows, stop);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Skipping_verification_is_refused_when_the_alter_adds_a_unique_constraint(bool execute)
    {
        var (connectionString, uri) = await DatabaseAsync();
        string before = await ScalarAsync(connectionString, "SELECT count(*) || ':' || sum(hashtext(id || '|' || k)) FROM t");

        var result = await OscRunner.RunAsync(["alter", uri, "--table", "t", "--alter", "ADD CONSTRAINT t_k_unique UNIQUE (k)", "--skip-verify", "--native", "off",
            .. execute ? ["--execute"] : Array.Empty<string>()]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--skip-verify with an ALTER that adds the unique key t_k_unique", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await ScalarAsync(connectionString, "SELECT count(*) || ':' || sum(hashtext(id || '|' || k)) FROM t"));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT coalesce(string_agg(relname, ','), '') FROM pg_class WHERE relname LIKE 't\\_osc\\_%'"));
        Assert.Equal("", await LeftoversAsync(connectionString));

        // A primary key widened over the old one cannot make two rows collide, nor can the replay's own index on id.
        var widened = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (k, id)", "--skip-verify", "--native", "off");
        Assert.True(widened.ExitCode == 0, widened.Stderr);

        // A USING expression keeps the key column's type and can still make its values collide.
        await ExecuteAsync(connectionString, "CREATE UNIQUE INDEX t_note_key ON t (md5(note))");
        var lowered = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN note TYPE text USING lower(note)", "--skip-verify", "--native", "off");
        Assert.Equal(1, lowered.ExitCode);
        Assert.Contains("--skip-verify with an ALTER that adds the unique key", lowered.Stderr, StringComparison.Ordinal);
        // A unique key the original enforces, beside the row key, is built after the copy: no moved value can make a
        // chunk skip a row on it.
        var untouched = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--skip-verify", "--native", "off");
        Assert.True(untouched.ExitCode == 0, untouched.Stderr);
    }

    [Fact]
    public async Task A_truncate_during_the_migration_stops_it_with_a_clear_error_and_nothing_of_ours_left()
    {
        var (connectionString, uri) = await DatabaseAsync();
        // The swap waits for the flag to go, so the TRUNCATE lands in the migration however fast the machine copies
        // (20,000 rows can be copied, verified and swapped between two polls).
        using var postpone = new FlagFile("pg-truncate");
        Task<OscRunner.Result> alter = OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint",
            "--execute", "--workers", "1", "--chunk-time-millis", "20", "--max-load", "active_sessions=1000", "--postpone-cut-over-flag-file", postpone.Path);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await ScalarAsync(connectionString, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'osc\\_%' AND database = current_database()") == "0")
        {
            if (alter.IsCompleted || DateTime.UtcNow > deadline)
            {
                Assert.Fail("the slot never appeared: " + (alter.IsCompleted ? (await alter).Stderr : ""));
            }

            await Task.Delay(10);
        }

        await ExecuteAsync(connectionString, "TRUNCATE t");
        var result = await alter.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("truncated", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("integer", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 't\\_osc\\_%'"));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Fact]
    public async Task Kill_9_during_the_copy_then_cleanup_removes_slot_publication_and_shadow_and_a_rerun_finishes()
    {
        var (connectionString, uri) = await DatabaseAsync();
        // The copy is held by the throttle flag from its first chunk, so the kill lands in the copy however fast the
        // machine is (20,000 rows were copied, verified and swapped between two polls on a quiet one); killed once the
        // first checkpoint, and with it the slot, exists.
        using var flag = new FlagFile("pg-kill-hold");
        await using (var osc = OscProcess.Start(uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute", "--workers", "1",
            "--chunk-time-millis", "20", "--throttle-flag-file", flag.Path))
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (await ScalarAsync(connectionString,
                       "SELECT count(*) FROM pg_class c WHERE c.relname = 't_osc_log' AND EXISTS (SELECT FROM pg_replication_slots WHERE slot_name LIKE 'osc\\_t\\_%')") != "1"
                   || await ScalarAsync(connectionString, "SELECT count(*) FROM t_osc_log WHERE id = 2") != "1")
            {
                if (osc.HasExited)
                {
                    Assert.Fail($"osc exited before its first checkpoint: {osc.ExitReport()}");
                }

                Assert.True(DateTime.UtcNow < deadline, "timed out waiting for the first checkpoint");
                await Task.Delay(20);
            }

            osc.Kill();
        }

        Assert.Equal(0, await ShadowRowsAsync(connectionString));
        Assert.NotEqual("", await LeftoversAsync(connectionString));
        var refused = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("osc cleanup", refused.Stderr, StringComparison.Ordinal);

        var cleanup = await OscRunner.RunAsync("cleanup", uri, "--table", "t", "--json");
        Assert.True(cleanup.ExitCode == 0, cleanup.Stderr);
        Assert.Contains("replication slot osc_t_", cleanup.Stdout, StringComparison.Ordinal);
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 't\\_osc\\_%'"));

        var rerun = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute");
        Assert.True(rerun.ExitCode == 0, rerun.Stderr);
        Assert.Equal(Rows.ToString(CultureInfo.InvariantCulture), await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    [Fact]
    public async Task The_dry_run_checks_builds_the_shadow_with_the_alter_and_leaves_nothing()
    {
        var (connectionString, uri) = await DatabaseAsync();

        var result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint, DROP COLUMN doc, ADD COLUMN extra int DEFAULT 1", "--json");

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.True(result.Json.GetProperty("dryRun").GetBoolean());
        Assert.Matches("^osc_t_[0-9a-f]{8}$", result.Json.GetProperty("replicationSlot").GetString());
        Assert.Equal(["doc"], result.Json.GetProperty("droppedColumns").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["extra"], result.Json.GetProperty("addedColumns").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["id", "k", "note"], result.Json.GetProperty("columns").EnumerateArray().Select(c => c.GetProperty("target").GetString()));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 't\\_osc\\_%'"));
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("integer", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
    }

    [Fact]
    public async Task A_max_load_postgres_cannot_measure_is_refused_before_anything_is_created()
    {
        var (connectionString, uri) = await DatabaseAsync();

        var result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute", "--max-load", "Threads_running=50");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("active_sessions", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 't\\_osc\\_%'"));
        Assert.Equal("", await LeftoversAsync(connectionString));
    }

    private async Task<(string ConnectionString, string Uri)> DatabaseAsync()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("alter");
        string uri = PgSql.OscUri(connectionString);
        await ExecuteAsync(connectionString, $"""
            CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, note text, doc jsonb);
            ALTER TABLE t ALTER COLUMN note SET STORAGE EXTERNAL;
            INSERT INTO t SELECT g, g % 97, CASE WHEN g % 10 = 0 THEN repeat('big-' || g, 1000) ELSE 'row-' || g END, jsonb_build_object('g', g)
            FROM generate_series(1, {Rows}) g;
            ANALYZE t;
            """);
        return (connectionString, uri);
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

    /// <summary>
    /// The application: inserts, updates of small columns next to large out-of-line ones (sent as unchanged TOAST),
    /// updates of the large ones, key changes, deletes and multi-statement transactions, one at a time, with a model
    /// of what every acknowledged transaction left. A transaction that fails is rolled back and not modelled.
    /// </summary>
    private sealed class Workload
    {
        private readonly Dictionary<long, (long K, string NoteHash)> _rows = [];
        private readonly Random _random = new(5);
        private long _nextId = 10_000_000;

        public int Transactions { get; private set; }

        public int Failed { get; private set; }

        public static async Task<Workload> LoadAsync(string connectionString)
        {
            var workload = new Workload();
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT id, k, encode(sha256(convert_to(note, 'UTF8')), 'hex') FROM t", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                workload._rows[reader.GetInt64(0)] = (reader.GetInt32(1), reader.GetString(2));
            }

            return workload;
        }

        public async Task<Workload> RunAsync(string connectionString, CancellationToken cancellationToken)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            while (!cancellationToken.IsCancellationRequested)
            {
                var changes = new Dictionary<long, (long K, string NoteHash)?>();
                var sql = new StringBuilder("BEGIN;\n");
                int statements = _random.Next(10) == 0 ? 3 : 1;
                for (int s = 0; s < statements; s++)
                {
                    sql.Append(NextStatement(changes)).Append(";\n");
                }

                sql.Append("COMMIT;");
                try
                {
                    await using var command = new NpgsqlCommand(sql.ToString(), connection);
                    await command.ExecuteNonQueryAsync(CancellationToken.None);
                    foreach (var (id, row) in changes)
                    {
                        if (row is { } value)
                        {
                            _rows[id] = value;
                        }
                        else
                        {
                            _rows.Remove(id);
                        }
                    }

                    Transactions++;
                }
                catch (PostgresException)
                {
                    Failed++;
                    await using var rollback = new NpgsqlCommand("ROLLBACK", connection);
                    await rollback.ExecuteNonQueryAsync(CancellationToken.None);
                }

                await Task.Delay(2, CancellationToken.None);
            }

            return this;
        }

        /// <summary>One statement, with its effect recorded in <paramref name="changes"/> over the model.</summary>
        private string NextStatement(Dictionary<long, (long K, string NoteHash)?> changes)
        {
            (long K, string NoteHash)? Current(long id) => changes.TryGetValue(id, out var c) ? c : _rows.TryGetValue(id, out var r) ? r : null;
            long Existing()
            {
                for (int tries = 0; ; tries++)
                {
                    long id = tries < 50 ? 1 + _random.Next(20_000) : _rows.Keys.ElementAt(_random.Next(_rows.Count));
                    if (Current(id) is not null)
                    {
                        return id;
                    }
                }
            }

            int op = _random.Next(100);
            if (op < 25)
            {
                long id = _nextId++;
                changes[id] = (id % 13, Hash("new-" + id));
                return $"INSERT INTO t (id, k, note, doc) VALUES ({id}, {id % 13}, 'new-{id}', '{{\"new\": {id}}}')";
            }

            long target = Existing();
            var row = Current(target)!.Value;
            if (op < 55)
            {
                // Leaves note (often out of line) unsent in the stream.
                changes[target] = (row.K + 1, row.NoteHash);
                return $"UPDATE t SET k = k + 1 WHERE id = {target}";
            }

            if (op < 65)
            {
                string note = $"grown-{target}-" + new string('x', 3000 + _random.Next(3000));
                changes[target] = (row.K, Hash(note));
                return $"UPDATE t SET note = '{note}' WHERE id = {target}";
            }

            if (op < 80)
            {
                long moved = _nextId++;
                changes[target] = null;
                changes[moved] = row;
                return $"UPDATE t SET id = {moved} WHERE id = {target}";
            }

            changes[target] = null;
            return $"DELETE FROM t WHERE id = {target}";
        }

        public async Task AssertMatchesAsync(string connectionString)
        {
            var actual = new Dictionary<long, (long K, string NoteHash)>();
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT id, k, encode(sha256(convert_to(note, 'UTF8')), 'hex') FROM t", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                actual[reader.GetInt64(0)] = (reader.GetInt64(1), reader.GetString(2));
            }

            ModelAssert.Matches(_rows, actual);
        }

        private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }
}
