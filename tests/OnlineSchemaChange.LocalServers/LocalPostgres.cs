using System.Globalization;
using Npgsql;

namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// A throwaway PostgreSQL on 127.0.0.1 with wal_level=logical, in its own temporary directory, stopped and deleted on
/// disposal or when its owner process ends. As root it runs as the unprivileged database user (see tools/setup).
/// </summary>
public sealed class LocalPostgres : IAsyncDisposable
{
    private const int PortAttempts = 3;

    private readonly Watchdog watchdog;

    private LocalPostgres(PostgresOptions options, LocalPostgres? primary, string directory, int port, Watchdog watchdog)
    {
        Options = options;
        Primary = primary;
        Directory = directory;
        Port = port;
        this.watchdog = watchdog;
    }

    public PostgresOptions Options { get; }

    /// <summary>The primary this server streams from, or null for a primary.</summary>
    public LocalPostgres? Primary { get; }

    /// <summary>Temporary directory holding data, socket and log; deleted on disposal.</summary>
    public string Directory { get; }

    public int Port { get; }

    public string DataDirectory => Path.Combine(Directory, "data");

    public string LogPath => Path.Combine(Directory, "server.log");

    /// <summary>For a replica: its application_name and the physical replication slot it streams through.</summary>
    public string ReplicationName => string.Create(CultureInfo.InvariantCulture, $"replica_{Port}");

    /// <summary>The postmaster process id.</summary>
    public int ProcessId { get; private set; }

    /// <summary>The watchdog process id (see <see cref="Watchdog"/>).</summary>
    public int WatchdogProcessId => watchdog.ProcessId;

    /// <summary>TCP to 127.0.0.1 as the superuser, database postgres.</summary>
    public string ConnectionString => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = Options.User,
        Password = Options.Password,
        Database = "postgres",
    }.ConnectionString;

    /// <summary>Runs initdb and starts a primary, waiting until it accepts connections.</summary>
    public static Task<LocalPostgres> StartAsync(PostgresOptions? options = null, CancellationToken cancellationToken = default) =>
        StartInstanceAsync(options ?? new PostgresOptions(), primary: null, cancellationToken);

    /// <summary>Starts a streaming replica of this server (pg_basebackup -R -X stream) and waits until the primary sees it streaming.</summary>
    public Task<LocalPostgres> StartReplicaAsync(CancellationToken cancellationToken = default) =>
        StartInstanceAsync(Options, this, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await watchdog.DisposeAsync();
        if (Primary is not null)
        {
            await DropSlotAsync(Primary);
        }
    }

    /// <summary>Ends a server that never became ready: killed, not asked to stop.</summary>
    private async Task AbandonAsync()
    {
        await watchdog.KillAsync();
        await DisposeAsync();
    }

    private static async Task<LocalPostgres> StartInstanceAsync(PostgresOptions options, LocalPostgres? primary, CancellationToken cancellationToken)
    {
        var postgres = Binaries.FindIn("postgres", options.BinDirectory);
        var role = primary is null ? "primary" : "replica";
        for (var attempt = 1; ; attempt++)
        {
            var directory = System.IO.Directory.CreateTempSubdirectory($"osc-postgres-{role}-").FullName;
            var logPath = Path.Combine(directory, "server.log");
            var port = LoopbackPort.Next();
            try
            {
                await CreateDataDirectoryAsync(options, primary, directory, port, cancellationToken);
            }
            catch
            {
                System.IO.Directory.Delete(directory, recursive: true);
                throw;
            }

            var watchdog = Watchdog.Start(
                options.OwnerProcessId, directory, logPath, "INT", asDatabaseUser: true, [postgres, .. Arguments(options, directory, port)]);
            var server = new LocalPostgres(options, primary, directory, port, watchdog);
            try
            {
                await server.PrepareAsync(cancellationToken);
                return server;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // Read before disposal deletes the log.
                var failure = LocalServerException.WithLog($"PostgreSQL {role} on 127.0.0.1:{port} ({directory}) did not start: {e.Message}", logPath);
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

    private static async Task CreateDataDirectoryAsync(
        PostgresOptions options, LocalPostgres? primary, string directory, int port, CancellationToken cancellationToken)
    {
        var data = Path.Combine(directory, "data");
        if (primary is null)
        {
            await PostgresTemplate.CopyToAsync(options, data, cancellationToken);
            await DatabaseUser.TakeOverAsync(directory, cancellationToken);
        }
        else
        {
            var basebackup = Binaries.FindIn("pg_basebackup", options.BinDirectory);
            await DatabaseUser.TakeOverAsync(directory, cancellationToken);
            var name = string.Create(CultureInfo.InvariantCulture, $"replica_{port}");

            // -R writes primary_conninfo (password included) and standby.signal; -C -S makes a slot so the primary keeps
            // the WAL the standby still needs, however far behind a benchmark pushes it.
            await CommandRunner.RunAsync(
                DatabaseUser.Wrap([
                    basebackup, "-h", "127.0.0.1", "-p", primary.Port.ToString(CultureInfo.InvariantCulture), "-U", options.User,
                    "-D", data, "-R", "-X", "stream", "-C", "-S", name, "-d", $"application_name={name}",
                    "--checkpoint=fast", "--no-sync",
                ]),
                new Dictionary<string, string> { ["PGPASSWORD"] = options.Password },
                cancellationToken);
        }
    }

    private static List<string> Arguments(PostgresOptions options, string directory, int port) =>
    [
        "-D", Path.Combine(directory, "data"),
        .. PostgresSettings.Arguments(options, new Dictionary<string, string>
        {
            ["listen_addresses"] = "127.0.0.1",
            ["port"] = port.ToString(CultureInfo.InvariantCulture),
            ["unix_socket_directories"] = directory,
        }),
    ];

    private async Task PrepareAsync(CancellationToken cancellationToken)
    {
        ProcessId = await watchdog.ServerStarted.WaitAsync(cancellationToken);
        await PostgresSetup.WaitAcceptingAsync(PostgresSetup.Unpooled(ConnectionString), Options.StartTimeout, watchdog.ServerEnded, cancellationToken);
        if (Primary is not null)
        {
            await PostgresSetup.WaitStreamingAsync(
                PostgresSetup.Unpooled(Primary.ConnectionString), ReplicationName, Options.StartTimeout, watchdog.ServerEnded, cancellationToken);
        }
    }

    /// <summary>A gone standby's slot would make the primary keep WAL forever; best effort, the primary may be gone too.</summary>
    private async Task DropSlotAsync(LocalPostgres primary)
    {
        try
        {
            await using var connection = new NpgsqlConnection(PostgresSetup.Unpooled(primary.ConnectionString));
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = @name AND NOT active", connection);
            command.Parameters.AddWithValue("name", ReplicationName);
            await command.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException)
        {
        }
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"PostgreSQL {(Primary is null ? "primary" : "replica")} 127.0.0.1:{Port} ({Directory})");
}
