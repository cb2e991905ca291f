using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>
/// `osc alter --execute` on pgbench's own pgbench_accounts while the real pgbench (simple-update: UPDATE and SELECT of
/// an account, INSERT into pgbench_history) and our own writer (inserts, key moves, deletes and filler updates that
/// pgbench never touches) run through the whole copy and replay. The swap is postponed until both have stopped, so
/// the kept original and the new table must hold the same rows, checked by an independent SQL hash of each side.
/// </summary>
[Collection("servers")]
public sealed partial class PostgresPgbenchTests(ServersFixture servers, ITestOutputHelper output)
{
    private const int Scale = 1; // 100,000 accounts.
    private const string RowHash = "md5(string_agg(concat_ws('|', aid, bid, abalance, filler), ',' ORDER BY aid))";

    [Fact]
    public async Task Pgbench_and_our_writes_through_the_migration_lose_nothing_fail_nothing_and_the_tables_match()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("pgbench");
        var db = new NpgsqlConnectionStringBuilder(connectionString);
        string uri = $"postgres://{Uri.EscapeDataString(db.Username!)}:{Uri.EscapeDataString(db.Password!)}@{db.Host}:{db.Port}/{db.Database}";
        Pgbench.Result init = await Pgbench.RunAsync(db, "-i", "-q", "-s", Scale.ToString(CultureInfo.InvariantCulture));
        Assert.True(init.ExitCode == 0, init.Output);
        var writer = await AccountWriter.LoadAsync(connectionString);

        using var flag = new FlagFile("pgbench");
        using var stop = new CancellationTokenSource();
        Task<List<Pgbench.Result>> pgbench = Pgbench.RoundsAsync(db, stop.Token);
        Task<AccountWriter> ours = Task.Run(() => writer.RunAsync(connectionString, stop.Token));
        try
        {
            LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "pgbench_accounts", "--alter", "ALTER COLUMN bid TYPE bigint",
                "--execute", "--json", "--chunk-time-millis", "50", "--postpone-cut-over-flag-file", flag.Path);
            await run.WaitForEventAsync(e => e.TryGetProperty("state", out JsonElement s) && s.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
                TimeSpan.FromSeconds(180), "the copy and replay to finish");
            await stop.CancelAsync();
            List<Pgbench.Result> rounds = await pgbench;
            AccountWriter written = await ours;
            flag.Lift();
            OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));

            long processed = rounds.Sum(r => r.Processed);
            output.WriteLine(result.Stdout[Math.Max(0, result.Stdout.LastIndexOf("{\"event\":\"done\"", StringComparison.Ordinal))..] + result.Stderr);
            output.WriteLine($"pgbench: {rounds.Count} rounds, {processed} transactions, {rounds.Sum(r => r.Failed)} failed; ours: {written.Transactions} transactions");
            Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
            Assert.All(rounds, r => Assert.True(r.ExitCode == 0 && r.Failed == 0 && r.Processed > 0, r.Output));
            Assert.True(processed > 100 && written.Transactions > 100, "both loads must write through the migration");
            Assert.Equal("bigint", await ScalarAsync(connectionString,
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pgbench_accounts'::regclass AND attname = 'bid'"));

            // Independent of osc's verifier: the kept original, frozen at the swap, against the new table.
            Assert.Equal(await ScalarAsync(connectionString, $"SELECT {RowHash} FROM pgbench_accounts_osc_old"),
                await ScalarAsync(connectionString, $"SELECT {RowHash} FROM pgbench_accounts"));
            // pgbench's own bookkeeping: every acknowledged transaction added its delta to an account and one history row.
            Assert.Equal(processed.ToString(CultureInfo.InvariantCulture), await ScalarAsync(connectionString, "SELECT count(*) FROM pgbench_history"));
            Assert.Equal(await ScalarAsync(connectionString, "SELECT coalesce(sum(delta), 0) FROM pgbench_history"),
                await ScalarAsync(connectionString, "SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts"));
            await written.AssertMatchesAsync(connectionString);
            Assert.Equal("", await LeftoversAsync(connectionString));

            // The application goes on against the new table.
            Pgbench.Result after = await Pgbench.RunAsync(db, "-n", "-N", "-c", "2", "-T", "1");
            Assert.True(after.ExitCode == 0 && after.Failed == 0 && after.Processed > 0, after.Output);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(pgbench, ours).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    [Fact]
    public async Task Pgbench_running_through_the_swap_fails_nothing_and_every_acknowledged_delta_is_in_the_new_table()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("pgbench_swap");
        var db = new NpgsqlConnectionStringBuilder(connectionString);
        Pgbench.Result init = await Pgbench.RunAsync(db, "-i", "-q", "-s", Scale.ToString(CultureInfo.InvariantCulture));
        Assert.True(init.ExitCode == 0, init.Output);

        using var stop = new CancellationTokenSource();
        Task<List<Pgbench.Result>> pgbench = Pgbench.RoundsAsync(db, stop.Token);
        try
        {
            // No postponement: pgbench writes before, during and after the swap.
            OscRunner.Result result = await OscRunner.RunAsync("alter", OscUri(connectionString), "--table", "pgbench_accounts", "--alter", "ALTER COLUMN bid TYPE bigint",
                "--execute", "--json", "--chunk-time-millis", "50");
            await Task.Delay(TimeSpan.FromSeconds(1));
            await stop.CancelAsync();
            List<Pgbench.Result> rounds = await pgbench;

            long processed = rounds.Sum(r => r.Processed);
            output.WriteLine($"pgbench: {rounds.Count} rounds, {processed} transactions, {rounds.Sum(r => r.Failed)} failed");
            Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
            Assert.All(rounds, r => Assert.True(r.ExitCode == 0 && r.Failed == 0 && r.Processed > 0, r.Output));
            Assert.Equal("bigint", await ScalarAsync(connectionString,
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pgbench_accounts'::regclass AND attname = 'bid'"));
            // Each acknowledged transaction added its delta to one account and one history row, in one commit: an update
            // lost in the old table at the swap would leave the accounts' sum short of the history's.
            Assert.Equal(processed.ToString(CultureInfo.InvariantCulture), await ScalarAsync(connectionString, "SELECT count(*) FROM pgbench_history"));
            Assert.Equal(await ScalarAsync(connectionString, "SELECT coalesce(sum(delta), 0) FROM pgbench_history"),
                await ScalarAsync(connectionString, "SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts"));
            Assert.Equal("100000", await ScalarAsync(connectionString, "SELECT count(*) FROM pgbench_accounts"));
            Assert.Equal("", await LeftoversAsync(connectionString));
        }
        finally
        {
            await stop.CancelAsync();
            await pgbench.ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>The pgbench client: PostgreSQL 15's, found where tools/setup installs it, else on PATH.</summary>
    private static partial class Pgbench
    {
        public sealed record Result(int ExitCode, long Processed, long Failed, string Output);

        /// <summary>Bounded simple-update rounds back to back until stopped: each ends by itself (-T) with its summary.</summary>
        public static async Task<List<Result>> RoundsAsync(NpgsqlConnectionStringBuilder db, CancellationToken stop)
        {
            var rounds = new List<Result>();
            while (!stop.IsCancellationRequested)
            {
                // -n: no VACUUM or TRUNCATE of pgbench_history between rounds, so the history keeps every transaction.
                rounds.Add(await RunAsync(db, "-n", "-N", "-c", "2", "-j", "1", "-T", "2"));
            }

            return rounds;
        }

        public static async Task<Result> RunAsync(NpgsqlConnectionStringBuilder db, params string[] arguments)
        {
            var start = new ProcessStartInfo(Locate()) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            start.Environment["PGPASSWORD"] = db.Password;
            foreach (string argument in new[] { "-h", db.Host!, "-p", db.Port.ToString(CultureInfo.InvariantCulture), "-U", db.Username! }.Concat(arguments).Append(db.Database!))
            {
                start.ArgumentList.Add(argument);
            }

            using Process process = Process.Start(start)!;
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
            string text = await stdout + await stderr;
            Match processed = Processed().Match(text), failed = Failed().Match(text);
            return new Result(process.ExitCode,
                processed.Success ? long.Parse(processed.Groups[1].Value, CultureInfo.InvariantCulture) : 0,
                failed.Success ? long.Parse(failed.Groups[1].Value, CultureInfo.InvariantCulture) : 0, text);
        }

        private static string Locate()
        {
            string? bin = Environment.GetEnvironmentVariable("OSC_TEST_PG_BINDIR") is { Length: > 0 } dir ? dir : "/usr/lib/postgresql/15/bin";
            string? found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Prepend(bin)
                .Where(d => d.Length > 0).Select(d => Path.Combine(d, "pgbench")).FirstOrDefault(File.Exists);
            Assert.True(found is not null, "pgbench not found in /usr/lib/postgresql/15/bin or on PATH: run tools/setup (it installs postgresql-15).");
            return found!;
        }

        [GeneratedRegex(@"number of transactions actually processed: (\d+)")]
        private static partial Regex Processed();

        [GeneratedRegex(@"number of failed transactions: (\d+)")]
        private static partial Regex Failed();
    }

    /// <summary>
    /// Our writes to pgbench_accounts, kept apart from pgbench's: accounts of our own (inserted above pgbench's range,
    /// moved to new keys, deleted) and the filler column of pgbench's accounts, which pgbench never writes. A model
    /// holds what every acknowledged transaction left; a failed one is rolled back and not modelled.
    /// </summary>
    private sealed class AccountWriter
    {
        private const int PgbenchAccounts = Scale * 100_000;
        private readonly Dictionary<int, string> _filler = [];
        private readonly List<int> _ours = [];
        private readonly Random _random = new(11);
        private int _nextAid = 10_000_000;

        public int Transactions { get; private set; }

        public static async Task<AccountWriter> LoadAsync(string connectionString)
        {
            var writer = new AccountWriter();
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT aid, rtrim(filler) FROM pgbench_accounts", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                writer._filler[reader.GetInt32(0)] = reader.IsDBNull(1) ? "" : reader.GetString(1);
            }

            return writer;
        }

        public async Task<AccountWriter> RunAsync(string connectionString, CancellationToken cancellationToken)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            while (!cancellationToken.IsCancellationRequested)
            {
                int op = _random.Next(100);
                string sql;
                Action apply;
                if (op < 30 || _ours.Count == 0)
                {
                    int aid = _nextAid++;
                    sql = $"INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES ({aid}, 1, 0, 'ours-{aid}')";
                    apply = () => { _filler[aid] = $"ours-{aid}"; _ours.Add(aid); };
                }
                else if (op < 60)
                {
                    int aid = 1 + _random.Next(PgbenchAccounts);
                    string filler = $"touched-{Transactions}";
                    sql = $"UPDATE pgbench_accounts SET filler = '{filler}' WHERE aid = {aid}";
                    apply = () => _filler[aid] = filler;
                }
                else if (op < 80)
                {
                    int index = _random.Next(_ours.Count), from = _ours[index], to = _nextAid++;
                    sql = $"UPDATE pgbench_accounts SET aid = {to} WHERE aid = {from}";
                    apply = () => { _filler[to] = _filler[from]; _filler.Remove(from); _ours[index] = to; };
                }
                else
                {
                    int index = _random.Next(_ours.Count), aid = _ours[index];
                    sql = $"DELETE FROM pgbench_accounts WHERE aid = {aid}";
                    apply = () => { _filler.Remove(aid); _ours.RemoveAt(index); };
                }

                try
                {
                    await using var command = new NpgsqlCommand(sql, connection);
                    await command.ExecuteNonQueryAsync(CancellationToken.None);
                    apply();
                    Transactions++;
                }
                catch (PostgresException)
                {
                    // Autocommit: a failed statement changed nothing.
                }

                await Task.Delay(2, CancellationToken.None);
            }

            return this;
        }

        public async Task AssertMatchesAsync(string connectionString)
        {
            var actual = new Dictionary<int, string>();
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT aid, rtrim(filler) FROM pgbench_accounts", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                actual[reader.GetInt32(0)] = reader.IsDBNull(1) ? "" : reader.GetString(1);
            }

            ModelAssert.Matches(_filler, actual);
        }
    }
}
