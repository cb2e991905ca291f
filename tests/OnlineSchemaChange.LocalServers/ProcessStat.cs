namespace OnlineSchemaChange.LocalServers;

/// <summary>What /proc says about a process: the same checks the watchdog script makes, for C#.</summary>
internal static class ProcessStat
{
    /// <summary>Alive and not a zombie.</summary>
    public static bool IsAlive(int pid) => Fields(pid) is [var state, ..] && state != "Z";

    /// <summary>Field 22 of /proc/&lt;pid&gt;/stat, which tells a process from a later one that reuses its pid; null if gone.</summary>
    public static string? StartTime(int pid) => Fields(pid) is { Length: > 19 } fields && fields[0] != "Z" ? fields[19] : null;

    /// <summary>The arguments joined by spaces; empty if gone or unreadable.</summary>
    public static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    // The fields after the command name, which may itself hold spaces and parentheses: field 3 (the state) comes first.
    private static string[]? Fields(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
