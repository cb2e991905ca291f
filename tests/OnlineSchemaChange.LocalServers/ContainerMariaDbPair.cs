using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Networks;
using MySqlConnector;

namespace OnlineSchemaChange.LocalServers;

/// <summary>A MariaDB primary and replica in containers (mariadb:10.11), with the same settings as the local ones.</summary>
internal sealed class ContainerMariaDbPair : IServerPair
{
    private const string Image = "mariadb:10.11";
    private const int ServerPort = 3306;
    private const string PrimaryAlias = "osc-mariadb-primary";
    private const string RootPassword = "osc-root";

    private readonly MariaDbOptions options;
    private readonly ContainerEngine engine;
    private readonly CancellationTokenSource lifetime = new();
    private readonly INetwork network;
    private readonly OnceAsync<(IContainer Container, string ConnectionString)> primary;
    private readonly OnceAsync<(IContainer Container, string ConnectionString)> replica;

    public ContainerMariaDbPair(MariaDbOptions options, ContainerEngine engine)
    {
        this.options = options;
        this.engine = engine;
        network = engine.Use(new NetworkBuilder()).WithName($"osc-mariadb-{Guid.NewGuid():N}").Build();
        primary = new(token => StartServerAsync(PrimaryAlias, replicateFrom: null, token), lifetime.Token);
        replica = new(async token =>
        {
            var (_, primaryConnectionString) = await primary.GetAsync(token);
            return await StartServerAsync("osc-mariadb-replica", primaryConnectionString, token);
        }, lifetime.Token);
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

    private async Task<(IContainer, string)> StartServerAsync(string alias, string? replicateFrom, CancellationToken cancellationToken)
    {
        if (replicateFrom is null)
        {
            // The replica starts after its primary, on the network the primary created.
            await network.CreateAsync(cancellationToken);
        }

        var container = engine.Use(new ContainerBuilder(Image))
            .WithNetwork(network)
            .WithNetworkAliases(alias)
            .WithEnvironment("MARIADB_ROOT_PASSWORD", RootPassword)
            .WithPortBinding(ServerPort, assignRandomHostPort: true)
            .WithCreateParameterModifier(engine.Publishing)
            .WithCommand([.. MariaDbArguments.Common(options, ServerIds.Next())])
            .WithWaitStrategy(Wait.ForUnixContainer().UntilInternalTcpPortIsAvailable(ServerPort))
            .Build();
        try
        {
            await container.StartAsync(cancellationToken);
            var root = ConnectionString(container, "root", RootPassword);
            await Poll.UntilAsync("mariadbd in the container accepts connections", async token =>
            {
                await using var connection = new MySqlConnection(new MySqlConnectionStringBuilder(root) { Pooling = false }.ConnectionString);
                await connection.OpenAsync(token);
                return true;
            }, options.StartTimeout, serverEnded: null, cancellationToken);
            await MariaDbSetup.CreateAccountAsync(root, options.User, options.Password, cancellationToken);
            if (replicateFrom is not null)
            {
                await MariaDbSetup.ReplicateAsync(
                    root, replicateFrom, PrimaryAlias, ServerPort, options.User, options.Password, options.StartTimeout, null, cancellationToken);
            }

            return (container, ConnectionString(container, options.User, options.Password));
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var (stdout, stderr) = await container.GetLogsAsync(ct: CancellationToken.None);
            await container.DisposeAsync();
            throw new LocalServerException(
                $"MariaDB container {alias} ({Image}) did not start: {e.Message}{Environment.NewLine}{LogTail.LastLines(stdout + stderr)}", e);
        }
        catch
        {
            await container.DisposeAsync();
            throw;
        }
    }

    private static string ConnectionString(IContainer container, string user, string password) => new MySqlConnectionStringBuilder
    {
        Server = ContainerEngine.Host(container),
        Port = container.GetMappedPublicPort(ServerPort),
        UserID = user,
        Password = password,
    }.ConnectionString;
}
