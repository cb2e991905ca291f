using System.Diagnostics;
using System.Globalization;

namespace OnlineSchemaChange.EndToEnd;

/// <summary>
/// pgbench's simple-update script (-N: UPDATE and SELECT of one pgbench_accounts row, INSERT into pgbench_history)
/// at a fixed rate, unlimited in time, until stopped, every transaction logged (-l) for per-second percentiles.
/// pgbench has no clean way to end a -T run early, so it is interrupted: its logs lose at most the last buffer of
/// lines, which <see cref="PgbenchLog"/> trims off.
/// </summary>
public sealed class PgbenchLoad : IAsyncDisposable
{
    private readonly Process process;
    private readonly Task<string> stdout;
    private readonly Task reading;
    private readonly List<string> problems = [];

    private PgbenchLoad(Process process, string logDirectory)
    {
        this.process = process;
        LogDirectory = logDirectory;
        stdout = process.StandardOutput.ReadToEndAsync();
        reading = ReadErrorsAsync();
    }

    public string LogDirectory { get; }

    public bool Exited => process.HasExited;

    /// <summary>What pgbench said on stderr other than its progress lines: errors and aborted clients.</summary>
    public IReadOnlyList<string> Problems
    {
        get
        {
            lock (problems)
            {
                return [.. problems];
            }
        }
    }

    /// <summary>Clients pgbench gave up on after an error they could not retry (each stops loading the server).</summary>
    public int AbortedClients => Problems.Count(p => p.Contains(" aborted", StringComparison.Ordinal));

    public static string Locate() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Prepend("/usr/lib/postgresql/15/bin")
            .Where(d => d.Length > 0).Select(d => Path.Combine(d, "pgbench")).FirstOrDefault(File.Exists) ?? "pgbench";

    public static PgbenchLoad Start(string pgbench, int port, string database, string logDirectory)
    {
        var start = new ProcessStartInfo(pgbench) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["PGPASSWORD"] = "osc";
        foreach (string argument in new[]
        {
            "-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-U", "osc",
            "-N", "-c", "4", "-j", "2", "-R", "300", "-P", "1", "-T", "86400", "-l", "--log-prefix", Path.Combine(logDirectory, "tx"), database,
        })
        {
            start.ArgumentList.Add(argument);
        }

        return new PgbenchLoad(Process.Start(start)!, logDirectory);
    }

    /// <summary>
    /// SIGTERM, then waits for the process and its output. Not SIGINT: a program started in the background by a
    /// non-interactive shell (`benchmark &amp;`, nohup) ignores SIGINT, its children inherit that, and pgbench ran on.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            using Process kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
        }

        await process.WaitForExitAsync();
        await reading;
        await stdout;
        process.Dispose();
    }

    private async Task ReadErrorsAsync()
    {
        while (await process.StandardError.ReadLineAsync() is { } line)
        {
            if (line.Length > 0 && !line.StartsWith("progress:", StringComparison.Ordinal) && !line.StartsWith("starting vacuum", StringComparison.Ordinal))
            {
                lock (problems)
                {
                    problems.Add(line);
                }
            }
        }
    }
}

/// <summary>One second of pgbench's per-transaction log, by completion time.</summary>
public sealed record PgbenchSecond(long EpochSecond, int Completed, int Failed, double P99Millis);

/// <summary>
/// pgbench's per-transaction logs (one file per thread): "client tx time script epoch_s epoch_us [lag]", time in µs
/// or "failed"/"skipped". With -R, time counts from the transaction's scheduled start, so it includes schedule lag:
/// a stall shows as latency of the transactions queued behind it.
/// </summary>
public static class PgbenchLog
{
    public static IReadOnlyList<PgbenchSecond> Read(string directory)
    {
        var seconds = new SortedDictionary<long, (List<double> Latencies, int Failed)>();
        long cutoff = long.MaxValue;
        foreach (string file in Directory.GetFiles(directory, "tx.*"))
        {
            long last = long.MinValue;
            foreach (string line in File.ReadLines(file))
            {
                string[] f = line.Split(' ');
                if (f.Length < 6 || !long.TryParse(f[4], CultureInfo.InvariantCulture, out long epoch))
                {
                    continue; // The line being written when pgbench was interrupted.
                }

                if (!seconds.TryGetValue(epoch, out var bucket))
                {
                    bucket = ([], 0);
                }

                if (f[2] == "failed")
                {
                    bucket.Failed++;
                }
                else if (double.TryParse(f[2], CultureInfo.InvariantCulture, out double micros))
                {
                    bucket.Latencies.Add(micros / 1000);
                }

                seconds[epoch] = bucket;
                last = Math.Max(last, epoch);
            }

            // Each thread's file may lack its last buffer; a second is complete only if every file got past it.
            cutoff = Math.Min(cutoff, last - 1);
        }

        if (seconds.Count == 0)
        {
            return [];
        }

        long first = seconds.Keys.First();
        var result = new List<PgbenchSecond>();
        for (long s = first; s <= cutoff; s++)
        {
            if (seconds.TryGetValue(s, out var bucket))
            {
                bucket.Latencies.Sort();
                double p99 = bucket.Latencies.Count == 0 ? 0 : bucket.Latencies[(int)Math.Ceiling(bucket.Latencies.Count * 0.99) - 1];
                result.Add(new PgbenchSecond(s, bucket.Latencies.Count, bucket.Failed, p99));
            }
            else
            {
                result.Add(new PgbenchSecond(s, 0, 0, 0));
            }
        }

        return result;
    }
}

/// <summary>The load's view of one run: the ALTER window is every second that overlaps it.</summary>
public sealed record PgbenchSummary(double P99Before, double P99During, int Failed, int LongestStallSeconds, int Transactions)
{
    public static PgbenchSummary Of(IReadOnlyList<PgbenchSecond> seconds, DateTimeOffset alterStart, DateTimeOffset alterEnd)
    {
        double start = alterStart.ToUnixTimeMilliseconds() / 1000.0, end = alterEnd.ToUnixTimeMilliseconds() / 1000.0;
        double before = seconds.Where(s => s.EpochSecond + 1 <= start).Select(s => s.P99Millis).DefaultIfEmpty().Max();
        double during = seconds.Where(s => s.EpochSecond + 1 > start && s.EpochSecond < end).Select(s => s.P99Millis).DefaultIfEmpty().Max();
        int longest = 0, run = 0;
        foreach (PgbenchSecond s in seconds)
        {
            run = s.Completed == 0 ? run + 1 : 0;
            longest = Math.Max(longest, run);
        }

        return new PgbenchSummary(before, during, seconds.Sum(s => s.Failed), longest, seconds.Sum(s => s.Completed));
    }

    public static bool During(PgbenchSecond s, DateTimeOffset alterStart, DateTimeOffset alterEnd) =>
        s.EpochSecond + 1 > alterStart.ToUnixTimeMilliseconds() / 1000.0 && s.EpochSecond < alterEnd.ToUnixTimeMilliseconds() / 1000.0;
}
