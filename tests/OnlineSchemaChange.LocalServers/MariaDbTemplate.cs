namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// A data directory made by mariadb-install-db once per process; each instance starts from a copy, which takes a
/// fraction of the time the install does. A watchdog deletes it when the process ends.
/// </summary>
internal static class MariaDbTemplate
{
    public const string RedoLogSize = "48M";

    private static readonly Lazy<Task<string>> Template = new(CreateAsync);

    // Held for the life of the process: were it collected, its stdin pipe would close and it would delete the template.
    private static Watchdog? guard;

    /// <summary>Copies the template's data into <paramref name="dataDirectory"/> (which must not exist).</summary>
    public static async Task CopyToAsync(string dataDirectory, CancellationToken cancellationToken)
    {
        // The shared install must not be cancelled by whichever caller happened to start it.
        var template = await Template.Value.WaitAsync(cancellationToken);
        await CommandRunner.RunAsync(["cp", "-a", template, dataDirectory], cancellationToken: cancellationToken);
    }

    private static async Task<string> CreateAsync()
    {
        await LeftoverServers.SweepOnceAsync();
        var installDb = Binaries.Find("mariadb-install-db", "/usr/bin", "/usr/local/mysql/scripts");
        var directory = Directory.CreateTempSubdirectory("osc-mariadb-template-").FullName;
        guard = Watchdog.Start(Environment.ProcessId, directory, "/dev/null", "TERM", asDatabaseUser: false, server: []);
        var data = Path.Combine(directory, "data");
        List<string> command =
        [
            installDb, "--no-defaults", $"--datadir={data}", "--auth-root-authentication-method=normal",
            "--skip-test-db", "--skip-name-resolve", $"--innodb-log-file-size={RedoLogSize}",
        ];
        if (DatabaseUser.WeAreRoot)
        {
            command.Add("--user=root");
        }

        await CommandRunner.RunAsync(command);
        return data;
    }
}
