using MySqlConnector;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;

using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

[Collection("servers")]
public sealed class ReconnectTests(ServersFixture servers)
{
    private readonly BinlogTestServer fixture = new(servers);

    /// <summary>The server KILLs our dump connection twice while transactions of several rows stream in: every
    /// transaction must arrive exactly once and whole.</summary>
    [Fact]
    public async Task Killed_replication_connection_resumes_without_loss_or_duplicates()
    {
        const int Transactions = 300;
        var db = await fixture.NewDatabaseAsync("kill");
        await fixture.ExecuteAsync("CREATE TABLE k (id INT PRIMARY KEY, tx INT NOT NULL, n INT NOT NULL)", db);
        var start = await fixture.CurrentPositionAsync();
        var options = new BinlogClientOptions(await fixture.EndpointAsync())
        {
            Start = start,
            Tables = new HashSet<string> { db + ".k" },
            ServerId = 4242,
            ReconnectBaseDelay = TimeSpan.FromMilliseconds(50),
            ReadTimeout = TimeSpan.FromSeconds(15),
        };
        await using var client = new BinlogClient(options);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));

        var writer = Task.Run(async () =>
        {
            await using var connection = await fixture.OpenAsync(db);
            var id = 0;
            for (var tx = 0; tx < Transactions; tx++)
            {
                await using var transaction = await connection.BeginTransactionAsync(cts.Token);
                for (var n = 0; n <= tx % 4; n++)
                {
                    await using var insert = new MySqlCommand($"INSERT INTO k VALUES ({++id}, {tx}, {n})", connection, transaction);
                    await insert.ExecuteNonQueryAsync(cts.Token);
                }

                await transaction.CommitAsync(cts.Token);
                if (tx % 10 == 0)
                {
                    await Task.Delay(10, cts.Token);
                }
            }
        }, cts.Token);

        var rowsPerTransaction = new Dictionary<int, int>();
        var gtidsSeen = new HashSet<string>();
        var kills = 0;
        await foreach (var e in client.ReadEventsAsync(cts.Token))
        {
            if (e is XidEvent && rowsPerTransaction.ContainsKey(Transactions - 1))
            {
                break; // the last transaction's commit: all of it has been handed out
            }

            if (e is not RowsEvent rows)
            {
                continue;
            }

            foreach (var change in rows.Rows)
            {
                var tx = (int)change.After![1]!;
                rowsPerTransaction[tx] = rowsPerTransaction.GetValueOrDefault(tx) + 1;
            }

            gtidsSeen.Add(rows.Coordinates.Gtid!);
            if ((rowsPerTransaction.Count == 60 && kills == 0) || (rowsPerTransaction.Count == 180 && kills == 1))
            {
                await KillDumpConnectionsAsync();
                kills++;
            }
        }

        await writer;
        Assert.Equal(2, kills);
        Assert.True(client.Reconnects >= 2, $"expected reconnects after the kills, saw {client.Reconnects}");
        Assert.Equal(Transactions, rowsPerTransaction.Count);
        for (var tx = 0; tx < Transactions; tx++)
        {
            Assert.True(rowsPerTransaction.GetValueOrDefault(tx) == (tx % 4) + 1, $"transaction {tx}: {rowsPerTransaction.GetValueOrDefault(tx)} rows, expected {(tx % 4) + 1}");
        }

        Assert.Equal(Transactions, gtidsSeen.Count);
        Assert.NotNull(client.LastCommitted);
    }

    private async Task KillDumpConnectionsAsync()
    {
        await using var connection = await fixture.OpenAsync();
        var ids = new List<long>();
        await using (var list = new MySqlCommand("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                ids.Add(Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        Assert.NotEmpty(ids);
        foreach (var id in ids)
        {
            await using var kill = new MySqlCommand($"KILL CONNECTION {id}", connection);
            await kill.ExecuteNonQueryAsync();
        }
    }
}
