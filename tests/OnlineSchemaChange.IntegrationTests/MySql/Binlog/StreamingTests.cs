using MySqlConnector;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;

using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

[Collection("servers")]
public sealed class StreamingTests(ServersFixture servers)
{
    private readonly BinlogTestServer fixture = new(servers);

    private async Task<string> GtidBinlogPositionAsync()
    {
        await using var connection = await fixture.OpenAsync();
        await using var command = new MySqlCommand("SELECT @@gtid_binlog_pos", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task Mariadb_gtid_start_streams_only_later_transactions()
    {
        var db = await fixture.NewDatabaseAsync("gtid");
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (0)", db);
        var position = await GtidBinlogPositionAsync();
        await fixture.ExecuteAsync("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2), (3)", db);

        await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = BinlogStart.FromGtid(position) });
        var events = await BinlogTestServer.ReadRowsAsync(client, db, 3, TimeSpan.FromSeconds(30));
        Assert.Equal([1, 2, 3], events.SelectMany(e => e.Rows).Select(r => (int)r.After![0]!));
        Assert.All(events, e => Assert.Matches(@"^\d+-\d+-\d+$", e.Coordinates.Gtid!));
        Assert.NotEqual(events[0].Coordinates.Gtid, events[1].Coordinates.Gtid);
    }

    /// <summary>A consumer that stops after a commit and starts a new client at <see cref="BinlogClient.LastCommitted"/>
    /// continues with the next transaction.</summary>
    [Fact]
    public async Task Restart_from_last_committed_continues_with_the_next_transaction()
    {
        var db = await fixture.NewDatabaseAsync("resume");
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY)", db);
        var start = await fixture.CurrentPositionAsync();
        await fixture.ExecuteAsync("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)", db);
        var tables = new HashSet<string> { db + ".t" };

        BinlogCoordinates checkpoint;
        await using (var first = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start, Tables = tables }))
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var seen = 0;
            await foreach (var e in first.ReadEventsAsync(cts.Token))
            {
                seen += e is RowsEvent r ? r.Rows.Length : 0;
                if (seen == 2 && e is XidEvent)
                {
                    break;
                }
            }

            checkpoint = first.LastCommitted!.Value;
        }

        await using var second = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync())
        {
            Start = new BinlogStart.FilePosition(checkpoint.File, (uint)checkpoint.Position),
            Tables = tables,
        });
        var rest = await BinlogTestServer.ReadRowsAsync(second, db, 1, TimeSpan.FromSeconds(30));
        Assert.Equal(3, rest[0].Rows[0].After![0]);
    }

    [Fact]
    public async Task Idle_stream_receives_heartbeats_and_survives_ddl()
    {
        var db = await fixture.NewDatabaseAsync("idle");
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY, a INT)", db);
        var start = await fixture.CurrentPositionAsync();
        await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync())
        {
            Start = start,
            HeartbeatPeriod = TimeSpan.FromMilliseconds(300),
            ReadTimeout = TimeSpan.FromSeconds(5),
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var heartbeats = 0;
        var rows = new List<RowsEvent>();
        var wrote = false;
        await foreach (var e in client.ReadEventsAsync(cts.Token))
        {
            if (e is HeartbeatEvent)
            {
                heartbeats++;
            }

            if (heartbeats >= 2 && !wrote)
            {
                wrote = true;
                await fixture.ExecuteAsync("INSERT INTO t VALUES (1, 10)", db);
            }

            if (e is RowsEvent r && r.Table.Database == db)
            {
                rows.Add(r);
                if (rows.Count == 1)
                {
                    await fixture.ExecuteAsync("ALTER TABLE t ADD COLUMN b VARCHAR(5) FIRST; INSERT INTO t VALUES ('x', 2, 20)", db);
                }
                else
                {
                    break;
                }
            }
        }

        Assert.True(heartbeats >= 2);
        Assert.Equal(["id", "a"], [rows[0].ColumnName(0), rows[0].ColumnName(1)]);
        Assert.Equal(new object?[] { "x", 2, 20 }, rows[1].Rows[0].After);
        Assert.Equal("b", rows[1].ColumnName(0)); // names reloaded from information_schema after the ALTER
    }

    /// <summary>With binlog_checksum=NONE events carry no CRC trailer; the negotiated setting must be followed.</summary>
    [Fact]
    public async Task Stream_without_checksums()
    {
        var db = await fixture.NewDatabaseAsync("nocrc");
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20))", db);
        await fixture.ExecuteAsync("SET GLOBAL binlog_checksum = 'NONE'");
        try
        {
            var start = await fixture.CurrentPositionAsync();
            await fixture.ExecuteAsync("INSERT INTO t VALUES (1, 'no crc'), (2, NULL)", db);
            await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start });
            var rows = await BinlogTestServer.ReadRowsAsync(client, db, 2, TimeSpan.FromSeconds(30));
            Assert.Equal(new object?[] { 1, "no crc" }, rows[0].Rows[0].After);
            Assert.Equal(new object?[] { 2, null }, rows[0].Rows[1].After);
        }
        finally
        {
            await fixture.ExecuteAsync("SET GLOBAL binlog_checksum = 'CRC32'");
        }
    }

    /// <summary>A row event larger than 16 MB arrives in continued packets (0xFFFFFF-byte frames) and must be joined.</summary>
    [Fact]
    public async Task Event_larger_than_16_MB_is_joined_from_continued_packets()
    {
        var db = await fixture.NewDatabaseAsync("big");
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB)", db);
        var start = await fixture.CurrentPositionAsync();
        await fixture.ExecuteAsync("INSERT INTO t VALUES (1, REPEAT(CONCAT('0123456789', CHAR(255)), 2000000))", db);
        await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start, Tables = new HashSet<string> { db + ".t" } });
        var rows = await BinlogTestServer.ReadRowsAsync(client, db, 1, TimeSpan.FromSeconds(60));
        var blob = Assert.IsType<byte[]>(rows[0].Rows[0].After![1]);
        Assert.Equal(22_000_000, blob.Length);
        Assert.True(rows[0].Header.EventLength > 0xFFFFFF);
        Assert.Equal((byte)'0', blob[0]);
        Assert.Equal((byte)255, blob[^1]);
        Assert.Equal((byte)'5', blob[11 * 1_234_567 + 5]);
    }

    [Fact]
    public async Task Schema_filter_keeps_every_table_of_one_database_only()
    {
        var db = await fixture.NewDatabaseAsync("schemafilter");
        var otherDb = await fixture.NewDatabaseAsync("schemaother");
        await fixture.ExecuteAsync("CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY)", db);
        await fixture.ExecuteAsync("CREATE TABLE a (id INT PRIMARY KEY)", otherDb);
        var start = await fixture.CurrentPositionAsync();
        await fixture.ExecuteAsync($"INSERT INTO {otherDb}.a VALUES (9); INSERT INTO a VALUES (1); INSERT INTO b VALUES (2); INSERT INTO {otherDb}.a VALUES (10); INSERT INTO a VALUES (3)", db);
        await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start, Tables = new HashSet<string> { db + ".*" } });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new List<string>();
        await foreach (var e in client.ReadEventsAsync(cts.Token))
        {
            if (e is RowsEvent r)
            {
                seen.Add($"{r.Table.Database}.{r.Table.Table}:{r.Rows[0].After![0]}");
                if (seen.Count == 3)
                {
                    break;
                }
            }
        }

        Assert.Equal([$"{db}.a:1", $"{db}.b:2", $"{db}.a:3"], seen);
    }
}
