using System.Globalization;

namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// Removes the directories, and stops the servers, that an earlier run abandoned. A watchdog cleans up when its owner
/// dies, but a test host killed together with its whole process tree (what a hang timeout does) takes its watchdogs
/// along, and their directories (tens of megabytes each) stay behind. A directory is touched only when its
/// watchdog.pid names a process that is gone, or a later process that reused the pid: one without that file, or
/// whose watchdog lives, belongs to a run in progress, ours or another's.
/// </summary>
public static class LeftoverServers
{
    private static readonly string[] Prefixes = ["osc-mariadb-", "osc-postgres-"];
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);
    private static readonly Lazy<Task> Once = new(() => Task.Run(() => SweepAsync()));

    /// <summary>The sweep, once per process, before its first server starts.</summary>
    internal static Task SweepOnceAsync() => Once.Value;

    /// <summary>Sweeps <paramref name="parent"/> (default: the temp directory) and returns the directories removed.</summary>
    public static async Task<IReadOnlyList<string>> SweepAsync(string? parent = null, CancellationToken cancellationToken = default)
    {
        parent ??= Path.GetTempPath();
        var removed = new List<string>();
        foreach (var directory in Directory.EnumerateDirectories(parent, "osc-*"))
        {
            var name = Path.GetFileName(directory);
            if (!Prefixes.Any(prefix => name.StartsWith(prefix, StringComparison.Ordinal)) || !IsAbandoned(directory))
            {
                continue;
            }

            try
            {
                await StopServerAsync(directory, cancellationToken);
                Directory.Delete(directory, recursive: true);
                removed.Add(directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not ours to remove after all (another user's), or half gone: the next sweep looks again, and a
                // failure here must never keep the tests from starting their own servers.
            }
        }

        return removed;
    }

    private static bool IsAbandoned(string directory)
    {
        string text;
        try
        {
            text = File.ReadAllText(Path.Combine(directory, "watchdog.pid"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // No watchdog yet, or not readable: leave it.
        }

        return text.Split(' ', StringSplitOptions.TrimEntries) is [var pidText, var startText]
            && int.TryParse(pidText, CultureInfo.InvariantCulture, out var pid)
            && ProcessStat.StartTime(pid) != startText;
    }

    /// <summary>Stops a server still running in the directory: its pid file names it, its command line must name the directory.</summary>
    private static async Task StopServerAsync(string directory, CancellationToken cancellationToken)
    {
        var isPostgres = Path.GetFileName(directory).StartsWith("osc-postgres-", StringComparison.Ordinal);
        var pidFile = isPostgres ? Path.Combine(directory, "data", "postmaster.pid") : Path.Combine(directory, "mysqld.pid");
        string firstLine;
        try
        {
            firstLine = File.ReadLines(pidFile).FirstOrDefault() ?? "";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return; // No server ran, or it removed its pid file on its way out.
        }

        if (!int.TryParse(firstLine.Trim(), CultureInfo.InvariantCulture, out var pid) || !ProcessStat.IsAlive(pid)
            || !ProcessStat.CommandLine(pid).Contains(directory, StringComparison.Ordinal))
        {
            return; // Gone, or the pid now belongs to something else.
        }

        // Throwaway data: no shutdown to wait for. SIGQUIT is PostgreSQL's immediate shutdown, which also ends its
        // backends; mariadbd is one process.
        await SignalAsync(pid, isPostgres ? "QUIT" : "KILL", cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StopTimeout);
        while (ProcessStat.IsAlive(pid))
        {
            if (timeout.IsCancellationRequested)
            {
                cancellationToken.ThrowIfCancellationRequested();
                await SignalAsync(pid, "KILL", cancellationToken);
                break;
            }

            await Task.Delay(100, CancellationToken.None);
        }
    }

    private static async Task SignalAsync(int pid, string signal, CancellationToken cancellationToken)
    {
        try
        {
            await CommandRunner.RunAsync(["kill", $"-{signal}", pid.ToString(CultureInfo.InvariantCulture)], cancellationToken: cancellationToken);
        }
        catch (LocalServerException)
        {
            // It ended between our look and the signal.
        }
    }
}
