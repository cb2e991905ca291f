using System.Globalization;
using MySqlConnector;

namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// A throwaway MariaDB on 127.0.0.1 with the binlog settings an online schema change needs (ROW, FULL images, GTIDs),
/// in its own temporary directory, stopped and deleted on disposal or when its owner process ends.
/// </summary>
public sealed class LocalMariaDb : IAsyncDisposable
{
    private const int PortAttempts = 3;

    private readonly Watchdog watchdog;

    private LocalMariaDb(MariaDbOptions options, LocalMariaDb? primary, string directory, int port, int serverId, Watchdog watchdog)
    {
        Options = options;
        Primary = primary;
        Directory = directory;
        Port = port;
        ServerId = serverId;
        this.watchdog = watchdog;
    }

    public MariaDbOptions Options { get; }

    /// <summary>The primary this server replicates from, or null for a primary.</summary>
    public LocalMariaDb? Primary { get; }

    /// <summary>Temporary directory holding data, socket, pid file and log; deleted on disposal.</summary>
    public string Directory { get; }

    public int Port { get; }

    public int ServerId { get; }

    public string DataDirectory => Path.Combine(Directory, "data");

    public string SocketPath => Path.Combine(Directory, "mysqld.sock");

    public string LogPath => Path.Combine(Directory, "server.log");

    /// <summary>The mariadbd process id.</summary>
    public int ProcessId { get; private set; }

    /// <summary>The watchdog process id (see <see cref="Watchdog"/>).</summary>
    public int WatchdogProcessId => watchdog.ProcessId;

    /// <summary>TCP to 127.0.0.1 as the test account, no database selected.</summary>
    public string ConnectionString => new MySqlConnectionStringBuilder
    {
        Server = "127.0.0.1",
        Port = (uint)Port,
        UserID = Options.User,
        Password = Options.Password,
    }.ConnectionString;

    /// <summary>The unix socket as root (no password): how the server is set up before the test account exists.</summary>
    private string RootConnectionString => new MySqlConnectionStringBuilder
    {
        Server = SocketPath,
        ConnectionProtocol = MySqlConnectionProtocol.UnixSocket,
        UserID = "root",
        Pooling = false,
        ConnectionTimeout = 5,
    }.ConnectionString;

    /// <summary>Starts a primary and waits until it accepts connections as the test account.</summary>
    public static Task<LocalMariaDb> StartAsync(MariaDbOptions? options = null, CancellationToken cancellationToken = default) =>
        StartInstanceAsync(options ?? new MariaDbOptions(), primary: null, cancellationToken);

    /// <summary>Starts a replica of this server (same options, own server_id) and waits until replication runs and has caught up.</summary>
    public Task<LocalMariaDb> StartReplicaAsync(CancellationToken cancellationToken = default) =>
        StartInstanceAsync(Options, this, cancellationToken);

    public async ValueTask DisposeAsync() => await watchdog.DisposeAsync();

    /// <summary>Ends a server that never became ready: killed, not asked to stop.</summary>
    private async Task AbandonAsync()
    {
        await watchdog.KillAsync();
        await DisposeAsync();
    }

    private static async Task<LocalMariaDb> StartInstanceAsync(MariaDbOptions options, LocalMariaDb? primary, CancellationToken cancellationToken)
    {
        var mariadbd = Binaries.Find("mariadbd", "/usr/sbin", "/usr/bin", "/usr/local/mysql/bin");
        var role = primary is null ? "primary" : "replica";
        for (var attempt = 1; ; attempt++)
        {
            var directory = System.IO.Directory.CreateTempSubdirectory($"osc-mariadb-{role}-").FullName;
            var logPath = Path.Combine(directory, "server.log");
            try
            {
                await MariaDbTemplate.CopyToAsync(Path.Combine(directory, "data"), cancellationToken);
            }
            catch
            {
                System.IO.Directory.Delete(directory, recursive: true);
                throw;
            }

            var port = LoopbackPort.Next();
            var serverId = ServerIds.Next();
            var watchdog = Watchdog.Start(
                options.OwnerProcessId, directory, logPath, "TERM", asDatabaseUser: false, [mariadbd, .. Arguments(options, directory, port, serverId, replica: primary is not null)]);
            var server = new LocalMariaDb(options, primary, directory, port, serverId, watchdog);
            try
            {
                await server.PrepareAsync(cancellationToken);
                return server;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // Read before disposal deletes the log.
                var failure = LocalServerException.WithLog($"MariaDB {role} on 127.0.0.1:{port} ({directory}) did not start: {e.Message}", logPath);
                await server.AbandonAsync();
                if (attempt < PortAttempts && failure.Message.Contains("Address already in use", StringComparison.Ordinal))
                {
                    continue; // Someone took the port between our probe and the bind.
                }

                throw failure;
            }
            catch
            {
                await server.AbandonAsync();
                throw;
            }
        }
    }

    private static List<string> Arguments(MariaDbOptions options, string directory, int port, int serverId, bool replica)
    {
        List<string> arguments =
        [
            "--no-defaults",
            $"--datadir={Path.Combine(directory, "data")}",
            $"--socket={Path.Combine(directory, "mysqld.sock")}",
            $"--pid-file={Path.Combine(directory, "mysqld.pid")}",
            $"--tmpdir={directory}",
            "--bind-address=127.0.0.1",
            $"--port={port}",
            $"--innodb-log-file-size={MariaDbTemplate.RedoLogSize}",
        ];
        if (replica)
        {
            // Listed in the primary's SHOW SLAVE HOSTS with an address osc can connect to: how replicas are discovered.
            arguments.Add("--report-host=127.0.0.1");
            arguments.Add($"--report-port={port}");
        }

        if (DatabaseUser.WeAreRoot)
        {
            arguments.Add("--user=root");
        }

        // Last, so that the caller's extra arguments override ours.
        arguments.AddRange(MariaDbArguments.Common(options, serverId));
        return arguments;
    }

    private async Task PrepareAsync(CancellationToken cancellationToken)
    {
        ProcessId = await watchdog.ServerStarted.WaitAsync(cancellationToken);
        await Poll.UntilAsync("mariadbd accepts connections on its socket", async token =>
        {
            await using var connection = new MySqlConnection(RootConnectionString);
            await connection.OpenAsync(token);
            return true;
        }, Options.StartTimeout, watchdog.ServerEnded, cancellationToken);

        await MariaDbSetup.CreateAccountAsync(RootConnectionString, Options.User, Options.Password, cancellationToken);
        if (Primary is not null)
        {
            await MariaDbSetup.ReplicateAsync(
                RootConnectionString, Primary.ConnectionString, "127.0.0.1", Primary.Port, Options.User, Options.Password,
                Options.StartTimeout, watchdog.ServerEnded, cancellationToken);
        }
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"MariaDB {(Primary is null ? "primary" : "replica")} 127.0.0.1:{Port} (server_id {ServerId}, {Directory})");
}
