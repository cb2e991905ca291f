namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// The OS user PostgreSQL runs as. PostgreSQL refuses to run as root, so as root we run it (and initdb, pg_basebackup)
/// as an unprivileged system user made by tools/setup; otherwise as ourselves.
/// </summary>
internal static class DatabaseUser
{
    public static bool WeAreRoot => Environment.IsPrivilegedProcess;

    public static string Name => Environment.GetEnvironmentVariable("OSC_TEST_DB_OS_USER") is { Length: > 0 } user ? user : "osc-db";

    /// <summary>The command line that runs <paramref name="command"/> as the database user.</summary>
    public static IReadOnlyList<string> Wrap(IReadOnlyList<string> command) =>
        WeAreRoot ? ["runuser", "-u", Name, "--", .. command] : command;

    /// <summary>Hands a directory we just created to the database user, so the server can write it and the watchdog delete it.</summary>
    public static async Task TakeOverAsync(string directory, CancellationToken cancellationToken)
    {
        if (WeAreRoot)
        {
            await CommandRunner.RunAsync(["chown", "-R", $"{Name}:", directory], cancellationToken: cancellationToken);
        }
    }
}
