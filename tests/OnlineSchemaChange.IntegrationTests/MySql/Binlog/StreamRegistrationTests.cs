using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;
using OnlineSchemaChange.MySql.Throttle;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>How osc's binlog stream shows on the server: its registration, its dump thread, and a second reader with its id.</summary>
[Collection("servers")]
public sealed class StreamRegistrationTests(ServersFixture servers, Xunit.Abstractions.ITestOutputHelper output)
{
    private readonly BinlogTestServer fixture = new(servers);

    [Fact]
    public async Task Disposing_the_client_ends_its_dump_thread_and_registration_at_once()
    {
        (string db, BinlogClient client, uint serverId) = await StreamingClientAsync("dispose");
        uint dump = client.DumpConnectionId ?? throw new InvalidOperationException("the client has not started streaming");
        Assert.Equal(1, await CountAsync($"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {dump} AND COMMAND LIKE 'Binlog Dump%'"));
        Assert.Contains(serverId, await RegisteredAsync(BinlogClientOptions.OscReportHost));

        await client.DisposeAsync();

        // Left alone, the thread would stay until its next heartbeat write fails (the heartbeat is every 5 s); a
        // killed thread takes a moment to exit, which 2 s leaves ample room for on a busy machine.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while ((await CountAsync($"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {dump}") != 0
                || (await RegisteredAsync(BinlogClientOptions.OscReportHost)).Contains(serverId))
               && clock.Elapsed < TimeSpan.FromSeconds(2))
        {
            await Task.Delay(20);
        }

        Assert.Equal(0, await CountAsync($"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {dump}"));
        Assert.DoesNotContain(serverId, await RegisteredAsync(BinlogClientOptions.OscReportHost));
        await fixture.ExecuteAsync("DROP DATABASE " + db);
    }

    [Fact]
    public async Task A_second_reader_with_the_same_server_id_ends_the_stream_with_an_error_that_says_so()
    {
        (string db, BinlogClient first, uint serverId) = await StreamingClientAsync("same_id");
        await using (first)
        {
            await using var second = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync())
            {
                ServerId = serverId,
                Start = await fixture.CurrentPositionAsync(),
                Tables = new HashSet<string> { db + ".t" },
            });
            await fixture.ExecuteAsync("INSERT INTO t VALUES (2)", db);
            await BinlogTestServer.ReadRowsAsync(second, db, 1, TimeSpan.FromSeconds(30));

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            OscException error = await Assert.ThrowsAsync<OscException>(async () =>
            {
                await foreach (BinlogEvent _ in first.ReadEventsAsync(timeout.Token))
                {
                }
            });
            Assert.Contains("same server id", error.Message, StringComparison.Ordinal);
            Assert.Contains(serverId.ToString(CultureInfo.InvariantCulture), error.Message, StringComparison.Ordinal);
            Assert.Equal(0, first.Reconnects);
        }

        await fixture.ExecuteAsync("DROP DATABASE " + db);
    }

    [Fact]
    public async Task Replica_discovery_does_not_take_an_osc_stream_for_a_replica()
    {
        var primary = new MySqlConnectionStringBuilder(await servers.MySqlAsync());
        var target = new ConnectionTarget(DatabaseEngine.MySql, primary.Server, (int)primary.Port, primary.UserID, null) { Password = primary.Password };
        DiscoveredReplicas before = await MySqlReplicaDiscovery.DiscoverAsync(target, CancellationToken.None);

        (string db, BinlogClient client, _) = await StreamingClientAsync("discovery");
        await using (client)
        {
            DiscoveredReplicas during = await MySqlReplicaDiscovery.DiscoverAsync(target, CancellationToken.None);
            output.WriteLine($"before: {string.Join("; ", before.Notes)} | {string.Join(", ", before.Replicas.Select(r => $"{r.Host}:{r.Port}"))}");
            output.WriteLine($"during: {string.Join("; ", during.Notes)}");
            Assert.Equal(before.Notes, during.Notes);
            Assert.Equal(before.Replicas.Select(r => $"{r.Host}:{r.Port}"), during.Replicas.Select(r => $"{r.Host}:{r.Port}"));

            // The same stream registered without osc's mark is an unknown reader, and said so.
            await using var unmarked = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync())
            {
                ServerId = StreamServerId.Pick(await RegisteredAsync(null), Random.Shared),
                ReportHost = "",
                Start = await fixture.CurrentPositionAsync(),
                Tables = new HashSet<string> { db + ".t" },
            });
            await fixture.ExecuteAsync("INSERT INTO t VALUES (3)", db);
            await BinlogTestServer.ReadRowsAsync(unmarked, db, 1, TimeSpan.FromSeconds(30));
            DiscoveredReplicas withUnknown = await MySqlReplicaDiscovery.DiscoverAsync(target, CancellationToken.None);
            Assert.True(withUnknown.Notes.Count > before.Notes.Count, string.Join("; ", withUnknown.Notes));
        }

        await fixture.ExecuteAsync("DROP DATABASE " + db);
    }

    /// <summary>A client streaming one table of a new database, with one row read, so its dump thread is up.</summary>
    private async Task<(string Db, BinlogClient Client, uint ServerId)> StreamingClientAsync(string prefix)
    {
        string db = await fixture.NewDatabaseAsync(prefix);
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY)", db);
        uint serverId = StreamServerId.Pick(await RegisteredAsync(null), Random.Shared);
        var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync())
        {
            ServerId = serverId,
            Start = await fixture.CurrentPositionAsync(),
            Tables = new HashSet<string> { db + ".t" },
        });
        await fixture.ExecuteAsync("INSERT INTO t VALUES (1)", db);
        await BinlogTestServer.ReadRowsAsync(client, db, 1, TimeSpan.FromSeconds(30));
        return (db, client, serverId);
    }

    /// <summary>Server ids in SHOW SLAVE HOSTS, of readers reporting <paramref name="host"/> (any when null).</summary>
    private async Task<HashSet<uint>> RegisteredAsync(string? host)
    {
        await using MySqlConnection connection = await fixture.OpenAsync();
        await using var command = new MySqlCommand("SHOW SLAVE HOSTS", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync();
        var ids = new HashSet<uint>();
        while (await reader.ReadAsync())
        {
            if (host is null || reader.GetString(1) == host)
            {
                ids.Add(Convert.ToUInt32(reader.GetValue(0), CultureInfo.InvariantCulture));
            }
        }

        return ids;
    }

    private async Task<long> CountAsync(string sql)
    {
        await using MySqlConnection connection = await fixture.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
