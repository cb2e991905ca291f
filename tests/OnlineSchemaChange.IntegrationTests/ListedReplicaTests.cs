using System.Net;
using System.Net.Sockets;
using MySqlConnector;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests;

/// <summary>A --replica that cannot be measured would keep the copy paused: it is refused up front, even in a dry run.</summary>
[Collection("servers")]
public sealed class ListedReplicaTests(ServersFixture servers)
{
    [Fact]
    public async Task MySql_refuses_a_listed_replica_that_is_the_primary_or_cannot_be_reached()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "listed", "CREATE TABLE t (id INT PRIMARY KEY, k INT)");
        var primary = new MySqlConnectionStringBuilder(db.ConnectionString);

        OscRunner.Result itself = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN c INT", "--replica", $"mysql://{primary.Server}:{primary.Port}");
        OscRunner.Result unreachable = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN c INT", "--replica", $"mysql://127.0.0.1:{ClosedPort()}");

        Assert.Equal(1, itself.ExitCode);
        Assert.Contains("is the primary itself", itself.Stderr, StringComparison.Ordinal);
        Assert.Equal(1, unreachable.ExitCode);
        Assert.Contains("cannot be used: Cannot connect", unreachable.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Postgres_refuses_a_listed_replica_that_is_not_a_standby_and_accepts_one_that_is()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("listed");
        await Postgres.PgSql.ExecuteAsync(connectionString, "CREATE TABLE t (id bigint PRIMARY KEY, k int)");
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        string uri = Postgres.PgSql.OscUri(connectionString);
        var standby = new NpgsqlConnectionStringBuilder(await servers.PostgresReplicaAsync());

        OscRunner.Result primary = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD COLUMN c int", "--replica", $"postgres://{builder.Host}:{builder.Port}");
        OscRunner.Result replica = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "ADD COLUMN c int", "--replica", $"postgres://{standby.Host}:{standby.Port}");

        Assert.Equal(1, primary.ExitCode);
        Assert.Contains("is not a standby", primary.Stderr, StringComparison.Ordinal);
        Assert.True(replica.ExitCode == 0, replica.Stderr);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
