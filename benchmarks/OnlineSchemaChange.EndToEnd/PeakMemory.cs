using System.Diagnostics;
using System.Globalization;

namespace OnlineSchemaChange.EndToEnd;

/// <summary>
/// Polls a process's VmHWM (peak resident set) and CPU time from /proc until it exits; the last readings are the peak
/// and (within one poll) the total.
/// </summary>
public static class PeakMemory
{
    public static async Task<(long? PeakBytes, TimeSpan? Cpu)> WatchAsync(Process process, CancellationToken cancellationToken)
    {
        long? peakKb = null;
        TimeSpan? cpu = null;
        string status = $"/proc/{process.Id}/status";
        while (!process.HasExited)
        {
            cpu = CpuTime.Of(process.Id) ?? cpu;
            try
            {
                foreach (string line in await File.ReadAllLinesAsync(status, cancellationToken))
                {
                    if (line.StartsWith("VmHWM:", StringComparison.Ordinal)
                        && long.TryParse(line["VmHWM:".Length..].Trim().Split(' ')[0], out long kb))
                    {
                        peakKb = Math.Max(peakKb ?? 0, kb);
                    }
                }
            }
            catch (IOException)
            {
                // The process ended between the check and the read.
            }

            await Task.Delay(50, cancellationToken);
        }

        return (peakKb is null ? null : peakKb * 1024, cpu);
    }
}

/// <summary>User plus system CPU time of a process so far, from /proc/PID/stat (null once it is gone).</summary>
public static class CpuTime
{
    // USER_HZ: the unit of /proc's tick counts on Linux.
    private const double TicksPerSecond = 100;

    public static TimeSpan? Of(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name and state.
            return TimeSpan.FromSeconds((long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
