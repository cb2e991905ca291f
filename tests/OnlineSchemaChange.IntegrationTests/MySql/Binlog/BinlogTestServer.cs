using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Protocol;
using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>The binlog tests' view of the shared MariaDB of the "servers" collection (binlog ROW, FULL, CRC32):
/// our endpoint, SQL through MySqlConnector, a fresh database per test.</summary>
public sealed class BinlogTestServer(ServersFixture servers)
{
    private string? _connectionString;

    private async Task<string> ConnectionStringAsync() => _connectionString ??= await servers.MySqlAsync();

    public async Task<MySqlEndpoint> EndpointAsync()
    {
        var builder = new MySqlConnectionStringBuilder(await ConnectionStringAsync());
        return new MySqlEndpoint(builder.Server, (int)builder.Port, builder.UserID, builder.Password) { Tls = TlsMode.Disabled };
    }

    public async Task<MySqlConnection> OpenAsync(string? database = null)
    {
        var builder = new MySqlConnectionStringBuilder(await ConnectionStringAsync()) { Database = database ?? "", AllowZeroDateTime = true, Pooling = false };
        var connection = new MySqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var tz = new MySqlCommand("SET time_zone = '+00:00'", connection);
        await tz.ExecuteNonQueryAsync();
        return connection;
    }

    public async Task ExecuteAsync(string sql, string? database = null)
    {
        await using var connection = await OpenAsync(database);
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<string> NewDatabaseAsync(string prefix) =>
        new MySqlConnectionStringBuilder(await servers.NewMySqlDatabaseAsync(prefix)).Database;

    public async Task<BinlogStart.FilePosition> CurrentPositionAsync()
    {
        await using var connection = await OpenAsync();
        await using var command = new MySqlCommand("SHOW MASTER STATUS", connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return new BinlogStart.FilePosition(reader.GetString(0), Convert.ToUInt32(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Reads row events of one database until <paramref name="rowCount"/> row changes have arrived.</summary>
    public static async Task<List<RowsEvent>> ReadRowsAsync(BinlogClient client, string database, int rowCount, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var events = new List<RowsEvent>();
        var rows = 0;
        await foreach (var e in client.ReadEventsAsync(cts.Token))
        {
            if (e is RowsEvent r && r.Table.Database == database)
            {
                events.Add(r);
                rows += r.Rows.Length;
                if (rows >= rowCount)
                {
                    break;
                }
            }
        }

        return events;
    }
}
