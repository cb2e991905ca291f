using System.Diagnostics;
using System.Globalization;
using Npgsql;
using OnlineSchemaChange.LocalServers;

namespace OnlineSchemaChange.EndToEnd;

/// <summary>
/// The PostgreSQL section: the same column change on pgbench_accounts, natively and with osc, each under the same
/// pgbench load, on a throwaway PostgreSQL 15. See docs/benchmarks.md.
/// </summary>
public static class PostgresBenchmark
{
    private const string DefaultChange = "ALTER COLUMN bid TYPE bigint";
    private const string Database = "bench";

    public static async Task<int> RunAsync(int rows, string oscPath, IReadOnlySet<string> only, IReadOnlyList<string> oscExtra, string? otherChange, bool durable, CancellationToken cancellationToken)
    {
        string change = otherChange ?? DefaultChange;
        string pgbench = PgbenchLoad.Locate();
        if (!File.Exists(pgbench) || !File.Exists("/usr/lib/postgresql/15/bin/postgres"))
        {
            Console.Error.WriteLine("Missing: PostgreSQL 15 and its pgbench. Install them with tools/setup (or: sudo apt-get install postgresql-15).");
            return 2;
        }

        // pgbench_accounts holds 100,000 rows per scale unit.
        int scale = Math.Max(1, rows / 100_000);
        var margin = TimeSpan.FromSeconds(5);
        Console.WriteLine($"Starting a throwaway PostgreSQL 15 on loopback; osc is {oscPath}");
        await using LocalPostgres postgres = await LocalPostgres.StartAsync(new PostgresOptions
        {
            Durable = durable,
            // Room for the original and the new table, as the MariaDB section's 512 MB buffer pool.
            Settings = new Dictionary<string, string> { ["shared_buffers"] = "512MB", ["max_wal_size"] = "4GB" },
        }, cancellationToken);
        Console.WriteLine($"  {postgres}{(durable ? ", durable (fsync, synchronous_commit, full_page_writes on)" : "")}");
        string uri = $"postgres://osc:osc@127.0.0.1:{postgres.Port}/{Database}";

        var methods = new (string Key, string Name, Func<CancellationToken, Task<MethodOutcome>> Run)[]
        {
            ("native", "native `ALTER TABLE`", ct => NativeAsync(postgres, change, ct)),
            ("osc", "`osc alter --execute`", ct => OscAsync(
                [oscPath, "alter", uri, "--table", "pgbench_accounts", "--alter", change, "--execute", "--json", .. oscExtra], ct)),
            // Never the native forms: what the rebuild costs where none of the table's rows needed copying.
            ("osc-rebuild", "`osc alter --execute --native off`", ct => OscAsync(
                [oscPath, "alter", uri, "--table", "pgbench_accounts", "--alter", change, "--execute", "--json", "--native", "off", .. oscExtra], ct)),
            // One copy worker: on a small machine the second competes with the application for the same cores.
            ("osc-w1", "`osc alter --execute --workers 1`", ct => OscAsync(
                [oscPath, "alter", uri, "--table", "pgbench_accounts", "--alter", change, "--execute", "--json", "--workers", "1", .. oscExtra], ct)),
        }.Where(m => only.Count == 0 ? m.Key != "osc-rebuild" : only.Contains(m.Key)).Select(m => (m.Name, m.Run)).ToArray();

        var results = new List<(string Name, MethodOutcome Outcome, PgbenchSummary Load, int Aborted, TimeSpan LongestWrite)>();
        var timelines = new List<string>();
        foreach (var (name, run) in methods)
        {
            Console.WriteLine();
            Console.WriteLine($"== {name}: pgbench -i -s {scale} ({scale * 100_000:N0} pgbench_accounts rows)");
            var fill = Stopwatch.StartNew();
            await InitializeAsync(postgres, pgbench, scale, cancellationToken);
            Console.WriteLine($"   initialized in {fill.Elapsed.TotalSeconds:0.0} s; pgbench starts, the ALTER follows in {margin.TotalSeconds:0} s");

            string logs = Directory.CreateTempSubdirectory("osc-pgbench-").FullName;
            try
            {
                MethodOutcome outcome;
                DateTimeOffset alterStart, alterEnd;
                PgbenchLoad load = PgbenchLoad.Start(pgbench, postgres.Port, Database, logs);
                TimeSpan longestWrite;
                await using (load)
                {
                    await using WriteProbe probe = await WriteProbe.StartAsync(new NpgsqlConnection(ConnectionString(postgres)),
                        "UPDATE pgbench_accounts SET abalance = abalance WHERE aid = @id", scale * 100_000, cancellationToken);
                    await Task.Delay(margin, cancellationToken);
                    alterStart = DateTimeOffset.UtcNow;
                    outcome = await run(cancellationToken);
                    alterEnd = DateTimeOffset.UtcNow;
                    longestWrite = probe.Longest(alterStart.UtcDateTime, alterEnd.UtcDateTime);
                    // One second more than the margin: pgbench is interrupted and its last buffered second is dropped.
                    await Task.Delay(margin + TimeSpan.FromSeconds(1), cancellationToken);
                    if (load.Exited)
                    {
                        outcome = outcome with { Ok = false, Detail = "pgbench stopped before the end of the run" };
                    }
                }

                if (outcome.Ok && change == DefaultChange && await ColumnTypeAsync(postgres, cancellationToken) is var type && type != "bigint")
                {
                    outcome = outcome with { Ok = false, Detail = $"bid is {type} afterwards, not bigint" };
                }

                IReadOnlyList<PgbenchSecond> seconds = PgbenchLog.Read(logs);
                PgbenchSummary summary = PgbenchSummary.Of(seconds, alterStart, alterEnd);
                foreach (string problem in load.Problems.Take(10))
                {
                    Console.WriteLine($"   pgbench: {problem}");
                }

                results.Add((name, outcome, summary, load.AbortedClients, longestWrite));
                timelines.Add($"{name}: " + string.Join(" ", seconds.Select(s =>
                    (PgbenchSummary.During(s, alterStart, alterEnd) ? "*" : "") + $"{s.Completed}/{s.P99Millis:0}" + (s.Failed > 0 ? $"!{s.Failed}" : ""))));
                Console.WriteLine($"   {(outcome.Ok ? "done" : "FAILED")} in {outcome.Elapsed.TotalSeconds:0.0} s{(outcome.Detail is null ? "" : ": " + outcome.Detail)}");
            }
            finally
            {
                Directory.Delete(logs, recursive: true);
            }
        }

        double native = results[0].Outcome.Elapsed.TotalSeconds;
        Console.WriteLine();
        Console.WriteLine($"pgbench_accounts, {scale * 100_000:N0} rows, `{change}`; load: pgbench -N -c 4 -j 2 -R 300 -P 1 -l from {margin.TotalSeconds:0} s before to {margin.TotalSeconds:0} s after each ALTER.");
        Console.WriteLine();
        Console.WriteLine("| Method | ALTER time | vs native | worst 1-s p99 before | worst 1-s p99 during | transactions | failed tx | aborted clients | longest 0-tps run | longest probe write | ACCESS EXCLUSIVE held | peak RSS |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (name, o, l, aborted, longest) in results)
        {
            string held = o.WritesHeld is { } h ? $"{h.TotalMilliseconds:N0} ms" : "—";
            string rss = o.PeakRssBytes is { } b ? $"{b / (1024.0 * 1024):N0} MB" : "—";
            string status = o.Ok ? "" : " (FAILED)";
            Console.WriteLine($"| {name}{status} | {o.Elapsed.TotalSeconds:0.0} s | {o.Elapsed.TotalSeconds / native:0.0} | {l.P99Before:N0} ms | {l.P99During:N0} ms | "
                              + $"{l.Transactions:N0} | {l.Failed:N0} | {aborted} | {l.LongestStallSeconds} s | {longest.TotalMilliseconds:N0} ms | {held} | {rss} |");
        }

        Console.WriteLine();
        Console.WriteLine("longest probe write: the slowest of single-row UPDATEs sent one after another, 10 ms apart, while the ALTER ran: the longest the application waited, to the millisecond. "
                          + "ACCESS EXCLUSIVE held: native = the whole ALTER (a type change rewrites under ACCESS EXCLUSIVE); osc = its own figure for the swap. "
                          + "peak RSS: VmHWM of the osc process (the server's own memory for native is not counted).");
        Console.WriteLine();
        Console.WriteLine("Per second, completed/p99 ms (* = a second overlapping the ALTER, !n = n failed):");
        timelines.ForEach(Console.WriteLine);
        return results.All(r => r.Outcome.Ok && r.Aborted == 0) ? 0 : 1;
    }

    /// <summary>osc as its own process, as a DBA runs it, with its peak memory and how long each phase lasted.</summary>
    private static async Task<MethodOutcome> OscAsync(IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        MethodOutcome outcome = await Methods.ExternalAsync("dotnet", arguments, cancellationToken);
        Console.WriteLine($"   osc phases: {outcome.Phases ?? "(none reported)"}");
        return outcome;
    }

    private static async Task<MethodOutcome> NativeAsync(LocalPostgres postgres, string change, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(ConnectionString(postgres));
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"ALTER TABLE pgbench_accounts {change}", connection) { CommandTimeout = 0 };
        var clock = Stopwatch.StartNew();
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
            // The rewrite holds ACCESS EXCLUSIVE from start to commit: the whole ALTER is the hold.
            return new MethodOutcome(true, clock.Elapsed, clock.Elapsed, null, null);
        }
        catch (PostgresException e)
        {
            return new MethodOutcome(false, clock.Elapsed, null, null, e.Message);
        }
    }

    /// <summary>A fresh database each time, so no method sees another's leftovers (the kept old table, dead rows).</summary>
    private static async Task InitializeAsync(LocalPostgres postgres, string pgbench, int scale, CancellationToken cancellationToken)
    {
        await using (var connection = new NpgsqlConnection(postgres.ConnectionString))
        {
            await connection.OpenAsync(cancellationToken);
            foreach (string sql in new[] { $"DROP DATABASE IF EXISTS {Database} WITH (FORCE)", $"CREATE DATABASE {Database}" })
            {
                await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        var start = new ProcessStartInfo(pgbench) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["PGPASSWORD"] = "osc";
        foreach (string argument in new[] { "-h", "127.0.0.1", "-p", postgres.Port.ToString(CultureInfo.InvariantCulture), "-U", "osc", "-i", "-q", "-s", scale.ToString(CultureInfo.InvariantCulture), Database })
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        Task<string> stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"pgbench -i failed ({process.ExitCode}): {await stderr}{await stdout}");
        }
    }

    private static async Task<string?> ColumnTypeAsync(LocalPostgres postgres, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(ConnectionString(postgres));
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pgbench_accounts'::regclass AND attname = 'bid'", connection);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    private static string ConnectionString(LocalPostgres postgres) =>
        new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = Database, Pooling = false }.ConnectionString;
}
