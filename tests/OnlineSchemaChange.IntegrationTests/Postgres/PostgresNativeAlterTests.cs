using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>
/// `osc alter` on PostgreSQL for an ALTER that needs no copy: a catalog change (no rewrite, scan or index build on the
/// planner's empty copy) runs natively in a transaction under lock_timeout; a change with a non-blocking form
/// (CONCURRENTLY, NOT VALID then VALIDATE) runs as those steps, undone when one fails. No slot, publication or shadow.
/// </summary>
[Collection("servers")]
public sealed class PostgresNativeAlterTests(ServersFixture servers, ITestOutputHelper output)
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
        OscRunner.Result off = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD COLUMN flag int NOT NULL DEFAULT 3", "--json", "--native", "off");

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

    [Fact]
    public async Task Set_not_null_runs_as_a_validated_check_while_the_application_writes_and_leaves_no_check_behind()
    {
        (string connectionString, string uri) = await DatabaseAsync();
        string fileBefore = await ScalarAsync(connectionString, FileNode);
        string[] run = ["alter", uri, "--table", "t", "--alter", "ALTER COLUMN note SET NOT NULL", "--json"];

        OscRunner.Result dryRun = await OscRunner.RunAsync(run);
        Assert.True(dryRun.ExitCode == 0, dryRun.Stderr);
        Assert.Equal("safe-variant", dryRun.Json.GetProperty("mode").GetString());
        Assert.Equal(["add NOT VALID", "validate", "set not null"], dryRun.Json.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("phase").GetString()!));

        using var stop = new CancellationTokenSource();
        Task<(int Count, TimeSpan Slowest)> writes = WritesAsync(connectionString, stop.Token);
        OscRunner.Result executed = await OscRunner.RunAsync([.. run, "--execute"]);
        await stop.CancelAsync();
        (int count, TimeSpan slowest) = await writes;
        output.WriteLine($"{count} writes, slowest {slowest.TotalMilliseconds:0} ms");

        Assert.True(executed.ExitCode == 0, executed.Stderr);
        JsonElement done = LiveOscRun.ParseAll(executed.Stdout)[^1];
        Assert.Equal("safe-variant", done.GetProperty("mode").GetString());
        Assert.Equal(["add NOT VALID", "validate", "set not null"], done.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("step").GetString()!));
        Assert.Equal("true", await ScalarAsync(connectionString, "SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'"));
        Assert.Equal("t_pkey", await ScalarAsync(connectionString, "SELECT string_agg(conname, ',') FROM pg_constraint WHERE conrelid = 't'::regclass"));
        Assert.Equal(fileBefore, await ScalarAsync(connectionString, FileNode));
        Assert.Equal("", await LeftoversAsync(connectionString));
        // The application went on writing throughout: the brief locks took milliseconds.
        Assert.True(count > 0 && slowest < TimeSpan.FromSeconds(1.5), $"{count} writes, slowest {slowest.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task A_check_that_existing_rows_break_fails_at_validation_and_the_constraint_is_dropped_again()
    {
        (string connectionString, string uri) = await DatabaseAsync();

        OscRunner.Result result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD CONSTRAINT k_small CHECK (k < 50)", "--execute");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Step validate failed", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("violated by some row", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing is left of the steps before it", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("t_pkey", await ScalarAsync(connectionString, "SELECT string_agg(conname, ',') FROM pg_constraint WHERE conrelid = 't'::regclass"));
        // Writes the constraint would have refused are accepted again.
        await ExecuteAsync(connectionString, "INSERT INTO t VALUES (100000, 90, 'after')");
    }

    [Theory]
    [InlineData("CREATE INDEX t_by_k ON t (k)", 0, "t_by_k,t_pkey")]
    [InlineData("CREATE UNIQUE INDEX t_k_unique ON t (k)", 1, "t_pkey")]
    public async Task An_index_is_built_concurrently_and_a_failed_build_leaves_no_invalid_index(string alter, int exitCode, string indexes)
    {
        (string connectionString, string uri) = await DatabaseAsync();

        OscRunner.Result result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", alter, "--execute", "--json");
        output.WriteLine(result.Stderr);

        Assert.True(result.ExitCode == exitCode, result.Stderr + result.Stdout);
        Assert.Equal(indexes, await ScalarAsync(connectionString, "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 't'::regclass"));
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass AND NOT indisvalid"));
        if (exitCode == 0)
        {
            Assert.Equal("safe-variant", LiveOscRun.ParseAll(result.Stdout)[^1].GetProperty("mode").GetString());
        }
        else
        {
            Assert.Contains("could not create unique index", result.Stdout, StringComparison.Ordinal);
            Assert.Contains("is duplicated", result.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Set_not_null_waits_for_every_step_that_can_fail_on_the_rows_so_a_failed_unique_build_leaves_the_column_as_it_was()
    {
        (string connectionString, string uri) = await DatabaseAsync();
        await ExecuteAsync(connectionString, "UPDATE t SET note = coalesce(note, 'filled')");

        // k holds duplicates: the unique build fails, after the NOT NULL check was validated but before SET NOT NULL ran.
        OscRunner.Result result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN note SET NOT NULL, ADD CONSTRAINT t_k_unique UNIQUE (k)",
            "--execute", "--json");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("is duplicated", result.Stdout, StringComparison.Ordinal);
        Assert.Equal("False", await ScalarAsync(connectionString, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'"),
            StringComparer.OrdinalIgnoreCase);
        Assert.Equal("t_pkey:p", await ScalarAsync(connectionString, "SELECT string_agg(conname || ':' || contype::text, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 't'::regclass"));
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass AND NOT indisvalid"));
    }

    [Theory]
    [InlineData("ADD CONSTRAINT t_k_parent FOREIGN KEY (k) REFERENCES parent (id)", "add NOT VALID,validate", "t_k_parent:f:t,t_pkey:p:t")]
    [InlineData("DROP CONSTRAINT t_pkey, ADD CONSTRAINT t_pkey2 PRIMARY KEY (id, k)", "build concurrently,attach", "t_pkey2:p:t")]
    public async Task A_foreign_key_or_a_new_primary_key_is_added_without_blocking_writes_and_ends_valid(string alter, string steps, string constraints)
    {
        (string connectionString, string uri) = await DatabaseAsync();
        await ExecuteAsync(connectionString, "CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(0, 200)");

        OscRunner.Result result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", alter, "--execute", "--json");

        Assert.True(result.ExitCode == 0, result.Stderr);
        JsonElement done = LiveOscRun.ParseAll(result.Stdout)[^1];
        Assert.Equal("safe-variant", done.GetProperty("mode").GetString());
        Assert.Equal(steps, string.Join(",", done.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("step").GetString())));
        Assert.Equal(constraints, await ScalarAsync(connectionString,
            "SELECT string_agg(format('%s:%s:%s', conname, contype, convalidated), ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 't'::regclass"));
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass AND NOT indisvalid"));
    }

    [Fact]
    public async Task While_a_concurrent_index_build_waits_the_table_run_lock_refuses_a_rebuild_and_another_change()
    {
        (string connectionString, string uri) = await DatabaseAsync();
        // A transaction that wrote the table: CREATE INDEX CONCURRENTLY waits for it to end.
        await using var writer = new NpgsqlConnection(connectionString);
        await writer.OpenAsync();
        await using NpgsqlTransaction transaction = await writer.BeginTransactionAsync();
        await new NpgsqlCommand("UPDATE t SET k = k WHERE id = 1", writer, transaction).ExecuteNonQueryAsync();

        LiveOscRun building = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", "CREATE INDEX t_by_k ON t (k)", "--json", "--execute");
        await building.WaitForEventAsync(e => e.GetProperty("event").GetString() == "native" && e.GetProperty("state").GetString()!.Contains("CONCURRENTLY", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the concurrent build");
        await WaitUntilAsync(connectionString, "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%CONCURRENTLY%' AND pid <> pg_backend_pid()");

        OscRunner.Result rebuild = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--native", "off", "--execute");
        OscRunner.Result other = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD COLUMN other int", "--execute");

        // Both name the building run and leave nothing behind; the build goes on once the transaction ends.
        Assert.Equal(1, rebuild.ExitCode);
        Assert.Contains("is in progress", rebuild.Stderr, StringComparison.Ordinal);
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("is in progress", other.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await LeftoversAsync(connectionString));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 't\\_osc%'"));
        Assert.False(building.Completion.IsCompleted);

        await transaction.CommitAsync();
        OscRunner.Result done = await building.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(done.ExitCode == 0, done.Stderr);
        Assert.Equal("safe-variant", LiveOscRun.ParseAll(done.Stdout)[^1].GetProperty("mode").GetString());
        Assert.Equal("t_by_k,t_pkey", await ScalarAsync(connectionString,
            "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 't'::regclass AND indisvalid"));
        Assert.Equal("integer", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'other'"));
    }

    private static async Task WaitUntilAsync(string connectionString, string condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (await ScalarAsync(connectionString, condition) != "True")
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"timed out waiting for {condition}");
            await Task.Delay(50);
        }
    }

    /// <summary>Single-row updates in a loop until <paramref name="stop"/>: how many, and the slowest.</summary>
    private static async Task<(int, TimeSpan)> WritesAsync(string connectionString, CancellationToken stop)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        int count = 0;
        TimeSpan slowest = TimeSpan.Zero;
        while (!stop.IsCancellationRequested)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await using (var update = new NpgsqlCommand("UPDATE t SET k = k + 1 WHERE id = 1 + (random() * 1999)::int", connection))
            {
                await update.ExecuteNonQueryAsync(CancellationToken.None);
            }

            count++;
            slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
            await Task.Delay(10, CancellationToken.None);
        }

        return (count, slowest);
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
