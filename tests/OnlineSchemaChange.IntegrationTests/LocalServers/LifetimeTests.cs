using System.Diagnostics;
using MySqlConnector;
using Npgsql;
using OnlineSchemaChange.LocalServers;

namespace OnlineSchemaChange.IntegrationTests.LocalServers;

/// <summary>Servers go away, files and all, when disposed and when their owner process dies.</summary>
public sealed class LifetimeTests
{
    private static readonly TimeSpan GoneWithin = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Disposing_a_MariaDb_stops_its_process_and_deletes_its_directory()
    {
        var server = await LocalMariaDb.StartAsync();
        var (pid, directory) = (server.ProcessId, server.Directory);
        await using (var connection = new MySqlConnection(server.ConnectionString))
        {
            await connection.OpenAsync();
        }

        Assert.True(ProcessIsRunning(pid));
        await server.DisposeAsync();

        Assert.False(ProcessIsRunning(pid), $"mariadbd {pid} still runs");
        Assert.False(Directory.Exists(directory), $"{directory} still exists");
    }

    [Fact]
    public async Task Disposing_a_Postgres_stops_its_process_and_deletes_its_directory()
    {
        var server = await LocalPostgres.StartAsync();
        var (pid, directory) = (server.ProcessId, server.Directory);
        await using (var connection = new NpgsqlConnection(server.ConnectionString))
        {
            // An open session: disposal must not wait for clients to leave (smart shutdown would).
            await connection.OpenAsync();
            Assert.True(ProcessIsRunning(pid));
            await server.DisposeAsync();
        }

        Assert.False(ProcessIsRunning(pid), $"postgres {pid} still runs");
        Assert.False(Directory.Exists(directory), $"{directory} still exists");
    }

    [Fact]
    public async Task The_watchdog_removes_a_MariaDb_whose_owner_died()
    {
        using var owner = StandInOwner();
        await using var server = await LocalMariaDb.StartAsync(new MariaDbOptions { OwnerProcessId = owner.Id });
        await AssertGoneAfterOwnerDiesAsync(owner, server.ProcessId, server.Directory);
    }

    [Fact]
    public async Task The_watchdog_removes_a_Postgres_whose_owner_died()
    {
        using var owner = StandInOwner();
        await using var server = await LocalPostgres.StartAsync(new PostgresOptions { OwnerProcessId = owner.Id });
        await AssertGoneAfterOwnerDiesAsync(owner, server.ProcessId, server.Directory);
    }

    [Fact]
    public async Task A_later_sweep_stops_servers_whose_watchdog_was_killed_and_spares_live_ones()
    {
        // A hang timeout kills the test host with its process tree, watchdogs included; the servers they started are
        // orphaned, or at least their directories are.
        await using var live = await LocalMariaDb.StartAsync();
        await using var orphanedMariaDb = await LocalMariaDb.StartAsync();
        await using var orphanedPostgres = await LocalPostgres.StartAsync();
        foreach (var directory in new[] { orphanedMariaDb.Directory, orphanedPostgres.Directory })
        {
            var watchdog = Process.GetProcessById(int.Parse(File.ReadAllText(Path.Combine(directory, "watchdog.pid")).Split(' ')[0]));
            watchdog.Kill();
            await watchdog.WaitForExitAsync();
        }

        Assert.True(ProcessIsRunning(orphanedMariaDb.ProcessId), "mariadbd went with its watchdog: nothing left to sweep");
        Assert.True(ProcessIsRunning(orphanedPostgres.ProcessId), "postgres went with its watchdog: nothing left to sweep");

        var removed = await LeftoverServers.SweepAsync();

        Assert.Contains(orphanedMariaDb.Directory, removed);
        Assert.Contains(orphanedPostgres.Directory, removed);
        Assert.DoesNotContain(live.Directory, removed);
        Assert.False(ProcessIsRunning(orphanedMariaDb.ProcessId), $"mariadbd {orphanedMariaDb.ProcessId} still runs");
        Assert.False(ProcessIsRunning(orphanedPostgres.ProcessId), $"postgres {orphanedPostgres.ProcessId} still runs");
        Assert.False(Directory.Exists(orphanedMariaDb.Directory));
        Assert.False(Directory.Exists(orphanedPostgres.Directory));
        await using var connection = new MySqlConnection(live.ConnectionString);
        await connection.OpenAsync();
        Assert.True(ProcessIsRunning(live.ProcessId));
    }

    private static async Task AssertGoneAfterOwnerDiesAsync(Process owner, int serverPid, string directory)
    {
        Assert.True(ProcessIsRunning(serverPid));
        owner.Kill();
        await owner.WaitForExitAsync();
        var clock = Stopwatch.StartNew();
        while ((ProcessIsRunning(serverPid) || Directory.Exists(directory)) && clock.Elapsed < GoneWithin)
        {
            await Task.Delay(100);
        }

        Assert.False(ProcessIsRunning(serverPid), $"server {serverPid} still runs {GoneWithin} after its owner died");
        Assert.False(Directory.Exists(directory), $"{directory} still exists {GoneWithin} after its owner died");
    }

    /// <summary>
    /// Stands in for a test run that dies: killed once the server is up (a fixed lifetime would race a slow start on a
    /// busy machine, and the server would be stopped before it was ever seen running).
    /// </summary>
    private static Process StandInOwner() =>
        Process.Start(new ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;

    /// <summary>Alive and not a zombie: a killed server may linger unreaped for a moment.</summary>
    private static bool ProcessIsRunning(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state != "Z";
        }
        catch (IOException)
        {
            return false;
        }
    }
}
