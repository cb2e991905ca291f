using System.Globalization;
using MySqlConnector;
using Npgsql;

namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// The database servers the tests, the demo and the benchmarks run against. For each engine, in this order:
/// connection strings from the environment (OSC_TEST_MYSQL, OSC_TEST_MYSQL_REPLICA, OSC_TEST_POSTGRES,
/// OSC_TEST_POSTGRES_REPLICA); containers when a Docker engine answers; throwaway servers from the local binaries.
/// OSC_TEST_SERVERS=containers or =local forces one of the last two. Each server starts on first use, once (a replica
/// starts its primary). There is no "skip": when no server can be had, the call throws and says why.
/// </summary>
public sealed class TestDatabases : IAsyncDisposable
{
    private readonly Func<string, string?> environment;
    private readonly MariaDbOptions mariaDbOptions;
    private readonly PostgresOptions postgresOptions;
    private readonly CancellationTokenSource lifetime = new();
    private readonly OnceAsync<Uri?> docker;
    private readonly OnceAsync<IServerPair> mysql;
    private readonly OnceAsync<IServerPair> postgres;
    private readonly List<ExternalDatabase> createdOnExternalServers = [];
    private int databaseCounter;
    private int disposed;

    public TestDatabases()
        : this(new MariaDbOptions(), new PostgresOptions(), Environment.GetEnvironmentVariable)
    {
    }

    /// <param name="environment">Where the OSC_TEST_* and Docker variables are read (the process environment by default).</param>
    public TestDatabases(MariaDbOptions mariaDbOptions, PostgresOptions postgresOptions, Func<string, string?> environment)
    {
        this.environment = environment;
        this.mariaDbOptions = mariaDbOptions;
        this.postgresOptions = postgresOptions;
        docker = new(token => DockerEngine.FindAsync(environment, token), lifetime.Token);
        mysql = new(token => ResolveAsync(MySql, token), lifetime.Token);
        postgres = new(token => ResolveAsync(Postgres, token), lifetime.Token);
    }

    private static Engine MySql { get; } = new("MariaDB", "OSC_TEST_MYSQL", "OSC_TEST_MYSQL_REPLICA");

    private static Engine Postgres { get; } = new("PostgreSQL", "OSC_TEST_POSTGRES", "OSC_TEST_POSTGRES_REPLICA");

    /// <summary>MySqlConnector connection string for the primary, no database selected.</summary>
    public Task<string> MySqlAsync(CancellationToken cancellationToken = default) =>
        ServerAsync(mysql, MySql, "primary", (pair, token) => pair.PrimaryAsync(token), cancellationToken);

    /// <summary>MySqlConnector connection string for a replica of <see cref="MySqlAsync"/>'s server.</summary>
    public Task<string> MySqlReplicaAsync(CancellationToken cancellationToken = default) =>
        ServerAsync(mysql, MySql, "replica", (pair, token) => pair.ReplicaAsync(token), cancellationToken);

    /// <summary>Npgsql connection string for the primary, database postgres.</summary>
    public Task<string> PostgresAsync(CancellationToken cancellationToken = default) =>
        ServerAsync(postgres, Postgres, "primary", (pair, token) => pair.PrimaryAsync(token), cancellationToken);

    /// <summary>Npgsql connection string for a streaming replica of <see cref="PostgresAsync"/>'s server.</summary>
    public Task<string> PostgresReplicaAsync(CancellationToken cancellationToken = default) =>
        ServerAsync(postgres, Postgres, "replica", (pair, token) => pair.ReplicaAsync(token), cancellationToken);

    public async Task<ServerSource> MySqlSourceAsync(CancellationToken cancellationToken = default) =>
        (await mysql.GetAsync(cancellationToken)).Source;

    public async Task<ServerSource> PostgresSourceAsync(CancellationToken cancellationToken = default) =>
        (await postgres.GetAsync(cancellationToken)).Source;

    /// <summary>Creates a database named after <paramref name="prefix"/> and unique, on the primary; returns a connection string to it.</summary>
    public async Task<string> CreateMySqlDatabaseAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var server = await MySqlAsync(cancellationToken);
        var name = UniqueName(prefix, maxLength: 64);
        await using (var connection = new MySqlConnection(server))
        {
            await connection.OpenAsync(cancellationToken);
            await using var command = new MySqlCommand($"CREATE DATABASE `{name}`", connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await RememberIfExternalAsync(mysql, new ExternalDatabase(IsMySql: true, server, name), cancellationToken);
        return new MySqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }

    /// <summary>Creates a database named after <paramref name="prefix"/> and unique, from template0, on the primary; returns a connection string to it.</summary>
    public async Task<string> CreatePostgresDatabaseAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var server = await PostgresAsync(cancellationToken);
        var name = UniqueName(prefix, maxLength: 63);
        await using (var connection = new NpgsqlConnection(server))
        {
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\" TEMPLATE template0", connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await RememberIfExternalAsync(postgres, new ExternalDatabase(IsMySql: false, server, name), cancellationToken);
        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }

    /// <summary>Stops what was started; on servers from the environment, drops the databases created here.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
        {
            return;
        }

        await DropExternalDatabasesAsync();
        await lifetime.CancelAsync();
        foreach (var engine in new[] { mysql, postgres })
        {
            if (await engine.StartedValueAsync() is { } pair)
            {
                await pair.DisposeAsync();
            }
        }

        lifetime.Dispose();
    }

    private static async Task<string> ServerAsync(
        OnceAsync<IServerPair> engineServers,
        Engine engine,
        string role,
        Func<IServerPair, CancellationToken, Task<string>> get,
        CancellationToken cancellationToken)
    {
        var pair = await engineServers.GetAsync(cancellationToken);
        try
        {
            return await get(pair, cancellationToken);
        }
        catch (LocalServerException e)
        {
            throw new LocalServerException(
                $"No {engine.Name} {role} for the tests (source: {Describe(pair.Source, engine)}). {e.Message}", e);
        }
    }

    private static string Describe(ServerSource source, Engine engine) => source switch
    {
        ServerSource.Environment => $"{engine.PrimaryVariable}/{engine.ReplicaVariable}",
        ServerSource.Containers => "Testcontainers",
        _ => $"local binaries: {engine.PrimaryVariable} is unset, and no Docker engine answered or OSC_TEST_SERVERS=local",
    };

    private async Task<IServerPair> ResolveAsync(Engine engine, CancellationToken cancellationToken)
    {
        if (environment(engine.PrimaryVariable) is { Length: > 0 } primary)
        {
            return new EnvironmentServerPair(engine.PrimaryVariable, primary, engine.ReplicaVariable, environment(engine.ReplicaVariable));
        }

        if (environment(engine.ReplicaVariable) is { Length: > 0 })
        {
            throw new LocalServerException($"{engine.ReplicaVariable} is set but {engine.PrimaryVariable} is not: set both, or neither.");
        }

        var mode = environment("OSC_TEST_SERVERS") is { Length: > 0 } m ? m.ToLowerInvariant() : "auto";
        if (mode is not ("auto" or "containers" or "local"))
        {
            throw new LocalServerException($"OSC_TEST_SERVERS is '{mode}': expected auto, containers or local.");
        }

        if (mode != "local" && await docker.GetAsync(cancellationToken) is { } dockerEngine)
        {
            return engine == MySql
                ? new ContainerMariaDbPair(mariaDbOptions, new ContainerEngine(dockerEngine))
                : new ContainerPostgresPair(postgresOptions, new ContainerEngine(dockerEngine));
        }

        if (mode == "containers")
        {
            throw new LocalServerException(
                "OSC_TEST_SERVERS=containers but no Docker engine answered (DOCKER_HOST or /var/run/docker.sock).");
        }

        return engine == MySql ? new LocalMariaDbPair(mariaDbOptions) : new LocalPostgresPair(postgresOptions);
    }

    private string UniqueName(string prefix, int maxLength)
    {
        var clean = new string(prefix.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray());
        var suffix = string.Create(
            CultureInfo.InvariantCulture, $"_{Interlocked.Increment(ref databaseCounter)}_{Guid.NewGuid().ToString("N")[..8]}");
        if (clean.Length == 0 || !char.IsAsciiLetter(clean[0]))
        {
            clean = "db_" + clean;
        }

        return clean[..Math.Min(clean.Length, maxLength - suffix.Length)] + suffix;
    }

    private async Task RememberIfExternalAsync(OnceAsync<IServerPair> engine, ExternalDatabase database, CancellationToken cancellationToken)
    {
        if ((await engine.GetAsync(cancellationToken)).Source == ServerSource.Environment)
        {
            lock (createdOnExternalServers)
            {
                createdOnExternalServers.Add(database);
            }
        }
    }

    /// <summary>Throwaway servers take their databases with them; servers someone else runs should not fill up with ours.</summary>
    private async Task DropExternalDatabasesAsync()
    {
        List<ExternalDatabase> created;
        lock (createdOnExternalServers)
        {
            created = [.. createdOnExternalServers];
        }

        foreach (var (isMySql, server, name) in created)
        {
            if (isMySql)
            {
                await using var connection = new MySqlConnection(server);
                await connection.OpenAsync();
                await using var command = new MySqlCommand($"DROP DATABASE IF EXISTS `{name}`", connection);
                await command.ExecuteNonQueryAsync();
            }
            else
            {
                await using var connection = new NpgsqlConnection(server);
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
                await command.ExecuteNonQueryAsync();
            }
        }
    }

    private sealed record ExternalDatabase(bool IsMySql, string Server, string Name);

    private sealed record Engine(string Name, string PrimaryVariable, string ReplicaVariable);
}
