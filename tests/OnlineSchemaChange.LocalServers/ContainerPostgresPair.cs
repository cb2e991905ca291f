using System.Text;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Networks;
using Npgsql;

namespace OnlineSchemaChange.LocalServers;

/// <summary>A PostgreSQL primary and streaming replica in containers (postgres:15), with the same settings as the local ones.</summary>
internal sealed class ContainerPostgresPair : IServerPair
{
    private const string Image = "postgres:15";
    private const int ServerPort = 5432;
    private const string PrimaryAlias = "osc-postgres-primary";
    private const string ReplicaName = "osc_replica";

    // The image's pg_hba only lets replication in from loopback; the replica comes from the container network.
    private const string AllowReplication = """
        #!/bin/bash
        echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        """;

    // The replica clones the primary before postgres starts, as the image's entrypoint would only run initdb.
    private const string CloneThenServe = """
        set -e
        until pg_isready -q -h "$OSC_PRIMARY" -p 5432; do sleep 0.2; done
        mkdir -p "$PGDATA" && rm -rf "$PGDATA"/* && chown postgres:postgres "$PGDATA" && chmod 0700 "$PGDATA"
        gosu postgres pg_basebackup -h "$OSC_PRIMARY" -p 5432 -U "$OSC_USER" -D "$PGDATA" -R -X stream -C -S "$OSC_NAME" \
          -d "application_name=$OSC_NAME" --checkpoint=fast
        exec gosu postgres postgres "$@"
        """;

    private readonly PostgresOptions options;
    private readonly ContainerEngine engine;
    private readonly CancellationTokenSource lifetime = new();
    private readonly INetwork network;
    private readonly OnceAsync<(IContainer Container, string ConnectionString)> primary;
    private readonly OnceAsync<(IContainer Container, string ConnectionString)> replica;

    public ContainerPostgresPair(PostgresOptions options, ContainerEngine engine)
    {
        this.options = options;
        this.engine = engine;
        network = engine.Use(new NetworkBuilder()).WithName($"osc-postgres-{Guid.NewGuid():N}").Build();
        primary = new(StartPrimaryAsync, lifetime.Token);
        replica = new(StartReplicaAsync, lifetime.Token);
    }

    public ServerSource Source => ServerSource.Containers;

    public async Task<string> PrimaryAsync(CancellationToken cancellationToken) => (await primary.GetAsync(cancellationToken)).ConnectionString;

    public async Task<string> ReplicaAsync(CancellationToken cancellationToken) => (await replica.GetAsync(cancellationToken)).ConnectionString;

    public async ValueTask DisposeAsync()
    {
        await lifetime.CancelAsync();
        foreach (var server in new[] { replica, primary })
        {
            if (await server.StartedValueAsync() is { Container: { } container })
            {
                await container.DisposeAsync();
            }
        }

        await network.DisposeAsync();
        lifetime.Dispose();
    }

    private async Task<(IContainer, string)> StartPrimaryAsync(CancellationToken cancellationToken)
    {
        await network.CreateAsync(cancellationToken);
        var container = engine.Use(new ContainerBuilder(Image))
            .WithNetwork(network)
            .WithNetworkAliases(PrimaryAlias)
            .WithEnvironment("POSTGRES_USER", options.User)
            .WithEnvironment("POSTGRES_PASSWORD", options.Password)
            .WithEnvironment("POSTGRES_HOST_AUTH_METHOD", "scram-sha-256")
            .WithEnvironment("POSTGRES_INITDB_ARGS", "--auth=scram-sha-256")
            .WithResourceMapping(Encoding.UTF8.GetBytes(AllowReplication), "/docker-entrypoint-initdb.d/allow-replication.sh")
            .WithPortBinding(ServerPort, assignRandomHostPort: true)
            .WithCreateParameterModifier(engine.Publishing)
            .WithCommand(["postgres", .. Settings()])
            .WithWaitStrategy(Wait.ForUnixContainer().UntilInternalTcpPortIsAvailable(ServerPort))
            .Build();
        return await StartAsync(container, "primary", replicaOf: null, cancellationToken);
    }

    private async Task<(IContainer, string)> StartReplicaAsync(CancellationToken cancellationToken)
    {
        var (_, primaryConnectionString) = await primary.GetAsync(cancellationToken);
        var container = engine.Use(new ContainerBuilder(Image))
            .WithNetwork(network)
            .WithNetworkAliases("osc-postgres-replica")
            .WithEnvironment("PGPASSWORD", options.Password)
            .WithEnvironment("OSC_PRIMARY", PrimaryAlias)
            .WithEnvironment("OSC_USER", options.User)
            .WithEnvironment("OSC_NAME", ReplicaName)
            .WithPortBinding(ServerPort, assignRandomHostPort: true)
            .WithCreateParameterModifier(engine.Publishing)
            .WithEntrypoint("bash", "-c", CloneThenServe, "clone-then-serve")
            .WithCommand([.. Settings()])
            .WithWaitStrategy(Wait.ForUnixContainer().UntilInternalTcpPortIsAvailable(ServerPort))
            .Build();
        return await StartAsync(container, "replica", primaryConnectionString, cancellationToken);
    }

    private List<string> Settings() =>
        PostgresSettings.Arguments(options, new Dictionary<string, string> { ["listen_addresses"] = "*" });

    private async Task<(IContainer, string)> StartAsync(IContainer container, string role, string? replicaOf, CancellationToken cancellationToken)
    {
        try
        {
            await container.StartAsync(cancellationToken);
            var connectionString = new NpgsqlConnectionStringBuilder
            {
                Host = ContainerEngine.Host(container),
                Port = container.GetMappedPublicPort(ServerPort),
                Username = options.User,
                Password = options.Password,
                Database = "postgres",
            }.ConnectionString;
            await PostgresSetup.WaitAcceptingAsync(PostgresSetup.Unpooled(connectionString), options.StartTimeout, null, cancellationToken);
            if (replicaOf is not null)
            {
                await PostgresSetup.WaitStreamingAsync(PostgresSetup.Unpooled(replicaOf), ReplicaName, options.StartTimeout, null, cancellationToken);
            }

            return (container, connectionString);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var (stdout, stderr) = await container.GetLogsAsync(ct: CancellationToken.None);
            await container.DisposeAsync();
            throw new LocalServerException(
                $"PostgreSQL {role} container ({Image}) did not start: {e.Message}{Environment.NewLine}{LogTail.LastLines(stdout + stderr)}", e);
        }
        catch
        {
            await container.DisposeAsync();
            throw;
        }
    }
}
