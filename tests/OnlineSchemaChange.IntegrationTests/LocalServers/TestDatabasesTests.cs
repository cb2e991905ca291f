using System.Diagnostics;
using OnlineSchemaChange.LocalServers;
using Xunit.Abstractions;

namespace OnlineSchemaChange.IntegrationTests.LocalServers;

/// <summary>Where the resolver gets servers from, and how fast it gets them.</summary>
public sealed class TestDatabasesTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StartBudget = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task All_four_local_servers_start_in_parallel_within_budget_and_once_each()
    {
        await using var databases = Resolver(new() { ["OSC_TEST_SERVERS"] = "local" });
        var clock = Stopwatch.StartNew();

        // Twice each, concurrently: a server is started once however many ask at the same time.
        var calls = await Task.WhenAll(
            databases.MySqlReplicaAsync(), databases.PostgresReplicaAsync(), databases.MySqlAsync(), databases.PostgresAsync(),
            databases.MySqlReplicaAsync(), databases.PostgresReplicaAsync(), databases.MySqlAsync(), databases.PostgresAsync());
        clock.Stop();
        output.WriteLine($"MariaDB and PostgreSQL, primary and replica each, started in {clock.Elapsed.TotalSeconds:0.0}s");

        Assert.Equal(calls[..4], calls[4..]);
        Assert.Equal(4, calls.Distinct().Count());
        Assert.Equal(ServerSource.LocalBinaries, await databases.MySqlSourceAsync());
        Assert.Equal(ServerSource.LocalBinaries, await databases.PostgresSourceAsync());
        Assert.True(clock.Elapsed < StartBudget, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Connection_strings_in_the_environment_win()
    {
        const string primary = "Server=192.0.2.1;Port=3306;User ID=u;Password=p";
        const string replica = "Server=192.0.2.2;Port=3306;User ID=u;Password=p";
        await using var databases = Resolver(new() { ["OSC_TEST_MYSQL"] = primary, ["OSC_TEST_MYSQL_REPLICA"] = replica });

        Assert.Equal(primary, await databases.MySqlAsync());
        Assert.Equal(replica, await databases.MySqlReplicaAsync());
        Assert.Equal(ServerSource.Environment, await databases.MySqlSourceAsync());
    }

    [Fact]
    public async Task A_primary_from_the_environment_without_its_replica_is_an_error_not_a_skip()
    {
        await using var databases = Resolver(new() { ["OSC_TEST_POSTGRES"] = "Host=192.0.2.1;Username=u;Password=p" });

        var error = await Assert.ThrowsAsync<LocalServerException>(() => databases.PostgresReplicaAsync());
        Assert.Contains("OSC_TEST_POSTGRES_REPLICA", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_Docker_engine_containers_are_ruled_out_fast()
    {
        // Nothing listens on this socket path: the resolver must give up on Docker at once rather than after retries.
        await using var databases = Resolver(new() { ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock", ["OSC_TEST_SERVERS"] = "containers" });
        var clock = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<LocalServerException>(() => databases.MySqlAsync());
        Assert.Contains("no Docker engine answered", error.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_Docker_host_that_does_not_answer_is_given_up_on_within_seconds()
    {
        // 192.0.2.0/24 is reserved for documentation: connecting there times out rather than being refused.
        await using var databases = Resolver(new() { ["DOCKER_HOST"] = "tcp://192.0.2.1:2375", ["OSC_TEST_SERVERS"] = "containers" });
        var clock = Stopwatch.StartNew();

        await Assert.ThrowsAsync<LocalServerException>(() => databases.PostgresAsync());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"took {clock.Elapsed}");
    }

    private static TestDatabases Resolver(Dictionary<string, string> variables) =>
        new(new MariaDbOptions(), new PostgresOptions(), name => variables.GetValueOrDefault(name));
}
