using System.Collections.Concurrent;

namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// A data directory made by initdb once per process (per binaries, superuser and password); each primary starts from
/// a copy, which takes a fraction of initdb's time. Copies share initdb's system identifier, which only a physical
/// replica cares about, and replicas are made by pg_basebackup from their own primary. A watchdog deletes it when the
/// process ends.
/// </summary>
internal static class PostgresTemplate
{
    private static readonly ConcurrentDictionary<(string BinDirectory, string User, string Password), Lazy<Task<string>>> Templates = new();

    // Held for the life of the process: were they collected, their stdin pipes would close and they would delete the templates.
    private static readonly ConcurrentBag<Watchdog> Guards = [];

    /// <summary>Copies the template's data into <paramref name="dataDirectory"/> (which must not exist).</summary>
    public static async Task CopyToAsync(PostgresOptions options, string dataDirectory, CancellationToken cancellationToken)
    {
        var template = Templates.GetOrAdd(
            (options.BinDirectory, options.User, options.Password),
            key => new Lazy<Task<string>>(() => Task.Run(() => CreateAsync(key.BinDirectory, key.User, key.Password))));

        // The shared initdb must not be cancelled by whichever caller happened to start it.
        var data = await template.Value.WaitAsync(cancellationToken);
        await CommandRunner.RunAsync(["cp", "-a", data, dataDirectory], cancellationToken: cancellationToken);
    }

    private static async Task<string> CreateAsync(string binDirectory, string user, string password)
    {
        await LeftoverServers.SweepOnceAsync();
        var initdb = Binaries.FindIn("initdb", binDirectory);
        var directory = Directory.CreateTempSubdirectory("osc-postgres-template-").FullName;
        Guards.Add(Watchdog.Start(Environment.ProcessId, directory, "/dev/null", "TERM", asDatabaseUser: false, server: []));
        var data = Path.Combine(directory, "data");
        var passwordFile = Path.Combine(directory, "password");
        await File.WriteAllTextAsync(passwordFile, password);
        await DatabaseUser.TakeOverAsync(directory, CancellationToken.None);
        await CommandRunner.RunAsync(DatabaseUser.Wrap([
            initdb, "-D", data, "-U", user, "--auth=scram-sha-256", $"--pwfile={passwordFile}",
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ]));
        File.Delete(passwordFile);

        // Replicas get this with the rest of the data directory from pg_basebackup.
        await File.WriteAllTextAsync(Path.Combine(data, "pg_hba.conf"), """
            local all all scram-sha-256
            host all all 127.0.0.1/32 scram-sha-256
            host replication all 127.0.0.1/32 scram-sha-256

            """);
        return data;
    }
}
