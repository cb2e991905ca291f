using MySqlConnector;
using OnlineSchemaChange.LocalServers;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Protocol;
using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>One throwaway MariaDB (ROW, FULL, CRC32) shared by the binlog tests; each test uses its own database.</summary>
public sealed class BinlogServerFixture : IAsyncLifetime
{
    private LocalMariaDb? _server;

    public LocalMariaDb Server => _server ?? throw new InvalidOperationException("not started");

    public MySqlEndpoint Endpoint => new("127.0.0.1", Server.Port, Server.Options.User, Server.Options.Password) { Tls = TlsMode.Disabled };

    public async Task InitializeAsync() => _server = await LocalMariaDb.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    public async Task<MySqlConnection> OpenAsync(string? database = null)
    {
        var builder = new MySqlConnectionStringBuilder(Server.ConnectionString) { Database = database ?? "", AllowZeroDateTime = true, Pooling = false };
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

    public async Task<string> NewDatabaseAsync(string prefix)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 64)];
        await ExecuteAsync($"CREATE DATABASE `{name}`");
        return name;
    }

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

[CollectionDefinition(Name)]
public sealed class BinlogServerGroup : ICollectionFixture<BinlogServerFixture>
{
    public const string Name = "binlog-server";
}
