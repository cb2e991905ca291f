using System.Collections.Concurrent;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using Xunit.Abstractions;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>`osc alter --execute` end to end on a real MariaDB, with the application writing all the way through.</summary>
[Collection("servers")]
public sealed class MySqlOnlineAlterTests(ServersFixture servers, ITestOutputHelper output)
{
    private const string Retype = "MODIFY k BIGINT NOT NULL, ADD COLUMN extra INT NOT NULL DEFAULT 7";

    [Theory]
    [InlineData("id INT PRIMARY KEY AUTO_INCREMENT", Retype, "PRIMARY")]
    // No primary key: InnoDB clusters on the first NOT NULL unique key, and so must every read and write of osc.
    [InlineData("id INT NOT NULL AUTO_INCREMENT, UNIQUE KEY by_id (id)", Retype, "by_id")]
    // A new primary key that does not start with id, which the replay still finds rows by: osc's own index on id
    // serves the replay and is gone from the new table.
    [InlineData("id INT PRIMARY KEY", Retype + ", DROP PRIMARY KEY, ADD PRIMARY KEY (k, id)", "PRIMARY")]
    public async Task An_online_alter_under_writes_keeps_every_acknowledged_write_and_leaves_only_the_old_table(string key, string change, string indexes)
    {
        var (connectionString, uri) = await DatabaseAsync($"""
            CREATE TABLE t ({key}, k INT NOT NULL, c VARCHAR(40), note TEXT);
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq), NULL FROM seq_1_to_30000;
            """);
        using var stop = new CancellationTokenSource();
        // Inserts, updates, primary-key changes, deletes and multi-statement transactions, before, during and after the swap.
        MySqlModelWorkload model = await MySqlModelWorkload.LoadAsync(connectionString);
        Task<MySqlModelWorkload> load = Task.Run(() => model.RunAsync(connectionString, stop.Token));

        // The swap waits until the load has written during the migration, however fast the machine runs it.
        using var postpone = new FlagFile("mysql-postpone");
        int before = model.Transactions;
        Task<OscRunner.Result> alter = OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", change,
            "--execute", "--json", "--chunk-time-millis", "100", "--postpone-cut-over-flag-file", postpone.Path);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (model.Transactions - before <= 60 && !alter.IsCompleted && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        postpone.Lift();
        var result = await alter;
        await Task.Delay(200);
        await stop.CancelAsync();
        MySqlModelWorkload writes = await load;

        output.WriteLine(result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]);
        output.WriteLine($"load: {writes.Transactions} transactions acknowledged ({writes.KeyMoves} key changes), {writes.Failed} failed");
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.True(writes.Transactions > 50, "the load must write through the migration");
        Assert.True(writes.KeyMoves > 0, "the load must change primary keys");
        Assert.Equal("bigint(20)", await ScalarAsync(connectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal("t_osc_old", await ScalarAsync(connectionString, "SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'"));
        Assert.Equal(indexes, await ScalarAsync(connectionString, "SELECT GROUP_CONCAT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't'"));
        // The swap dropped the replay's index under its lock exactly when the new key left the shadow none on id.
        var steps = LiveOscRun.ParseAll(result.Stdout + "\n")[^1].GetProperty("writesBlockedSteps").EnumerateArray().Select(e => e.GetProperty("step").GetString()).ToList();
        Assert.Equal(change.Contains("(k, id)", StringComparison.Ordinal), steps.Contains("replay's index dropped"));

        // Every acknowledged write is in the new table, and nothing else.
        await writes.AssertMatchesAsync(connectionString);
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t WHERE extra <> 7"));
    }

    [Fact]
    public async Task A_unique_key_over_duplicates_stops_before_the_swap_and_removes_everything_it_created()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY, u INT);
            INSERT INTO t SELECT seq, IF(seq <= 3, 1, seq) FROM seq_1_to_2000;
            """);
        string before = await ScalarAsync(connectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, u)))) FROM t");

        var result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD UNIQUE KEY uq (u)", "--execute");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Verification failed", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await ScalarAsync(connectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, u)))) FROM t"));
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'"));
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'uq'"));
    }

    [Fact]
    public async Task Values_of_a_unique_key_moving_between_rows_during_the_copy_all_reach_the_new_table()
    {
        // Each transaction frees a row's value and gives it to a new row elsewhere in the key space. Were by_v in the
        // shadow during the copy, a chunk could meet the freed value there (the replay of the update waits for that
        // chunk) and skip the new row, which verification would then find and copy again. by_v is built after the copy
        // instead: no chunk differs.
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, pad CHAR(100) NOT NULL DEFAULT '', UNIQUE KEY by_v (v));
            INSERT INTO t (id, v) SELECT seq * 2, seq FROM seq_1_to_200000;
            """);
        using var stop = new CancellationTokenSource();
        Task<int> moves = Task.Run(() => MoveValuesAsync(connectionString, 200_000, stop.Token));
        using var postpone = new FlagFile("unique-moves");
        // Deferred whatever replicas the server has (a watched replica keeps the indexes in the shadow by default).
        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", "MODIFY pad CHAR(120) NOT NULL DEFAULT ''", "--native", "off",
            "--execute", "--json", "--chunk-time-millis", "100", "--defer-indexes", "on", "--postpone-cut-over-flag-file", postpone.Path);
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
        const string Digest = "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, v)))) FROM ";
        Assert.Equal(await ScalarAsync(connectionString, Digest + "t_osc_old"), await ScalarAsync(connectionString, Digest + "t"));
        System.Text.Json.JsonElement done = LiveOscRun.ParseAll(result.Stdout)[^1];
        Assert.Equal(0, done.GetProperty("repairedChunks").GetInt32());
        Assert.Equal("by_v:0", await ScalarAsync(connectionString,
            "SELECT GROUP_CONCAT(DISTINCT CONCAT(INDEX_NAME, ':', NON_UNIQUE)) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME <> 'PRIMARY'"));
    }

    /// <summary>Moves values of t.v between rows until <paramref name="stop"/> (<see cref="UniqueValueMoves"/>); returns how many moved.</summary>
    private static async Task<int> MoveValuesAsync(string connectionString, int rows, CancellationToken stop)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        return await UniqueValueMoves.RunAsync(connection, rows, stop);
    }

    [Fact]
    public async Task A_killed_binlog_connection_mid_migration_reconnects_and_loses_nothing()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40), note TEXT);
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq), NULL FROM seq_1_to_100000;
            """);
        using var stop = new CancellationTokenSource();
        Task<Writes> load = Writes.RunAsync(connectionString, 100000, stop.Token);
        // The swap waits for the flag to go, so a fast machine cannot finish the whole run between two polls.
        using var postpone = new FlagFile("dump-kill");
        Task<OscRunner.Result> alter = OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL",
            "--execute", "--workers", "1", "--chunk-time-millis", "50", "--postpone-cut-over-flag-file", postpone.Path);

        // Once the replica connection is streaming and the copy is under way, the server kills it.
        int kills = 0;
        while (!alter.IsCompleted && kills == 0)
        {
            string dump = await ScalarAsync(connectionString, "SELECT COALESCE(MIN(ID), 0) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'");
            if (dump != "0" && await ShadowRowsAsync(connectionString) > 1000)
            {
                await ExecuteAsync(connectionString, $"KILL {dump}");
                kills++;
            }

            await Task.Delay(20);
        }

        postpone.Lift();

        OscRunner.Result result = await alter;
        await stop.CancelAsync();
        Writes writes = await load;

        Assert.Equal(1, kills);
        Assert.True(result.ExitCode == 0, result.Stderr);
        await AssertEveryWriteIsPresentAsync(connectionString, 100000, writes);
    }

    [Fact]
    public async Task Kill_9_during_the_copy_leaves_the_original_intact_and_cleanup_then_a_rerun_finish_the_job()
    {
        var (connectionString, uri) = await DatabaseAsync("""
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_200000;
            """);
        string before = await ScalarAsync(connectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t");
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string arg in new[] { Path.Combine(AppContext.BaseDirectory, "osc.dll"), "alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL",
                     "--execute", "--workers", "1", "--chunk-time-millis", "50" })
        {
            start.ArgumentList.Add(arg);
        }

        // The copy is held by the throttle flag from its first chunk on, so the kill lands in the copy however fast the
        // machine copies; the shadow and the bookkeeping table exist by then.
        using var flag = new FlagFile("kill-copy");
        start.ArgumentList.Add("--throttle-flag-file");
        start.ArgumentList.Add(flag.Path);
        using (var osc = System.Diagnostics.Process.Start(start)!)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (await ScalarAsync(connectionString, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_osc_log'") == "0"
                   || await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t_osc_log WHERE id = 2") == "0")
            {
                Assert.True(DateTime.UtcNow < deadline && !osc.HasExited, "the copy never started");
                await Task.Delay(20);
            }

            osc.Kill(entireProcessTree: true);
            await osc.WaitForExitAsync();
            flag.Lift();
        }

        Assert.Equal("int(11)", await ScalarAsync(connectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal(before, await ScalarAsync(connectionString, "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c)))) FROM t"));
        await ExecuteAsync(connectionString, "INSERT INTO t VALUES (300001, 1, 'still serving')");
        var refused = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("osc cleanup", refused.Stderr, StringComparison.Ordinal);

        var cleanup = await OscRunner.RunAsync("cleanup", uri, "--table", "t");
        Assert.Equal(0, cleanup.ExitCode);
        var rerun = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute");

        Assert.True(rerun.ExitCode == 0, rerun.Stderr);
        Assert.Equal("bigint(20)", await ScalarAsync(connectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal("200001", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
    }

    /// <summary>Rows in the shadow so far (a count, not InnoDB's estimate, which can lag), or 0 before it exists.</summary>
    internal static async Task<long> ShadowRowsAsync(string connectionString)
    {
        try
        {
            return long.Parse(await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t_osc_new"), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchTable)
        {
            return 0;
        }
    }

    internal static async Task AssertEveryWriteIsPresentAsync(string connectionString, int rows, Writes writes)
    {
        var inserted = writes.Inserted.Except(writes.Deleted).ToList();
        Assert.Equal((rows + inserted.Count - writes.Deleted.Count(d => d <= rows)).ToString(System.Globalization.CultureInfo.InvariantCulture),
            await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
        if (!writes.Deleted.IsEmpty)
        {
            Assert.Equal("0", await ScalarAsync(connectionString, $"SELECT COUNT(*) FROM t WHERE id IN ({string.Join(",", writes.Deleted)})"));
        }

        foreach (var group in writes.Incremented.Except(writes.Deleted).GroupBy(i => i))
        {
            Assert.Equal((group.Key % 97 + group.Count()).ToString(System.Globalization.CultureInfo.InvariantCulture),
                await ScalarAsync(connectionString, $"SELECT k FROM t WHERE id = {group.Key}"));
        }
    }

    private async Task<(string ConnectionString, string Uri)> DatabaseAsync(string setup)
    {
        string connectionString = await servers.NewMySqlDatabaseAsync("online_alter");
        var builder = new MySqlConnectionStringBuilder(connectionString);
        await using (var connection = new MySqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await using var command = new MySqlCommand(setup, connection);
            await command.ExecuteNonQueryAsync();
        }

        return (connectionString, $"mysql://{builder.UserID}:{builder.Password}@{builder.Server}:{builder.Port}/{builder.Database}");
    }

    /// <summary>An application's writes, each recorded once the server acknowledged it.</summary>
    internal sealed record Writes(ConcurrentBag<long> Inserted, ConcurrentBag<long> Incremented, ConcurrentBag<long> Deleted)
    {
        /// <param name="explicitIds">Insert with ids of its own (from 10,000,000) instead of the table's AUTO_INCREMENT.</param>
        public static async Task<Writes> RunAsync(string connectionString, int rows, CancellationToken cancellationToken, bool explicitIds = false)
        {
            var writes = new Writes([], [], []);
            await RunAsync(connectionString, rows, writes, cancellationToken, explicitIds);
            return writes;
        }

        /// <summary>Records into <paramref name="writes"/> as it goes, so a test can watch it while it runs.</summary>
        public static async Task RunAsync(string connectionString, int rows, Writes writes, CancellationToken cancellationToken, bool explicitIds = false)
        {
            long nextId = 10_000_000;
            var random = new Random(11);
            await using var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync(CancellationToken.None);
            var deleted = new HashSet<long>();
            while (!cancellationToken.IsCancellationRequested)
            {
                long id = random.Next(1, rows + 1);
                switch (random.Next(3))
                {
                    case 0:
                        await using (var insert = new MySqlCommand(explicitIds ? $"INSERT INTO t (id, k, c) VALUES ({nextId++}, 0, 'load')" : "INSERT INTO t (k, c) VALUES (0, 'load')", connection))
                        {
                            await insert.ExecuteNonQueryAsync(CancellationToken.None);
                            writes.Inserted.Add(explicitIds ? nextId - 1 : insert.LastInsertedId);
                        }

                        break;
                    case 1 when !deleted.Contains(id):
                        await using (var update = new MySqlCommand($"UPDATE t SET k = k + 1 WHERE id = {id}", connection))
                        {
                            await update.ExecuteNonQueryAsync(CancellationToken.None);
                            writes.Incremented.Add(id);
                        }

                        break;
                    case 2 when random.Next(4) == 0 && !deleted.Contains(id):
                        await using (var delete = new MySqlCommand($"DELETE FROM t WHERE id = {id}", connection))
                        {
                            await delete.ExecuteNonQueryAsync(CancellationToken.None);
                            writes.Deleted.Add(id);
                            deleted.Add(id);
                        }

                        break;
                }

                await Task.Delay(1, CancellationToken.None);
            }
        }
    }
}
