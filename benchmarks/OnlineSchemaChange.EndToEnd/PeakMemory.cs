using System.Diagnostics;

namespace OnlineSchemaChange.EndToEnd;

/// <summary>Polls a process's VmHWM (peak resident set) from /proc until it exits; the last reading is the peak.</summary>
public static class PeakMemory
{
    public static async Task<long?> WatchAsync(Process process, CancellationToken cancellationToken)
    {
        long? peakKb = null;
        string status = $"/proc/{process.Id}/status";
        while (!process.HasExited)
        {
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

        return peakKb is null ? null : peakKb * 1024;
    }
}
