using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace OnlineSchemaChange.EndToEnd;

/// <summary>One of sysbench's per-second report lines, stamped with when it arrived on our clock.</summary>
public sealed record SysbenchSecond(TimeSpan Arrived, double Tps, double P99Millis, double Errors, double Reconnects);

/// <summary>
/// sysbench oltp_write_only at a fixed rate, unlimited in time, until stopped. Every error is counted rather than
/// fatal (--mysql-ignore-errors=all), so a failed transaction shows in err/s instead of ending the load.
/// </summary>
public sealed partial class SysbenchLoad : IAsyncDisposable
{
    private readonly Process process;
    private readonly Stopwatch clock;
    private readonly List<SysbenchSecond> seconds = [];
    private readonly Task reading;

    private SysbenchLoad(Process process, Stopwatch clock)
    {
        this.process = process;
        this.clock = clock;
        reading = ReadAsync();
    }

    public IReadOnlyList<SysbenchSecond> Seconds
    {
        get
        {
            lock (seconds)
            {
                return [.. seconds];
            }
        }
    }

    public bool Exited => process.HasExited;

    public static SysbenchLoad Start(int port, int rows, Stopwatch clock)
    {
        var start = new ProcessStartInfo("sysbench") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in new[]
        {
            "oltp_write_only", "--db-driver=mysql", "--mysql-host=127.0.0.1", $"--mysql-port={port}",
            "--mysql-user=osc", "--mysql-password=osc", "--mysql-db=sbtest", "--mysql-ignore-errors=all",
            "--tables=1", $"--table-size={rows}", "--threads=4", "--rate=300", "--report-interval=1", "--percentile=99",
            "--time=0", "run",
        })
        {
            start.ArgumentList.Add(argument);
        }

        return new SysbenchLoad(Process.Start(start)!, clock);
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill();
        }

        await process.WaitForExitAsync();
        await reading;
        process.Dispose();
    }

    private async Task ReadAsync()
    {
        Task<string> errors = process.StandardError.ReadToEndAsync();
        while (await process.StandardOutput.ReadLineAsync() is { } line)
        {
            Match m = ReportLine().Match(line);
            if (m.Success)
            {
                var second = new SysbenchSecond(clock.Elapsed, Number(m, "tps"), Number(m, "p99"), Number(m, "err"), Number(m, "reconn"));
                lock (seconds)
                {
                    seconds.Add(second);
                }
            }
        }

        string stderr = await errors;
        if (stderr.Length > 0)
        {
            Console.Error.Write(stderr);
        }
    }

    private static double Number(Match m, string group) => double.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture);

    // [ 12s ] thds: 4 tps: 299.93 qps: 1799.58 (r/w/o: 0.00/1199.72/599.86) lat (ms,99%): 5.47 err/s: 0.00 reconn/s: 0.00
    [GeneratedRegex(@"^\[ *\d+s \] thds: \d+ tps: (?<tps>[\d.]+) .* lat \(ms,99%\): (?<p99>[\d.]+) err/s: (?<err>[\d.]+) reconn/s: (?<reconn>[\d.]+)")]
    private static partial Regex ReportLine();
}
