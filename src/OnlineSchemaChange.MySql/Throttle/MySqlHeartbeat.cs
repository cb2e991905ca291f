using MySqlConnector;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Throttle;

/// <summary>
/// Writes the primary's clock into the bookkeeping table every interval. The row replicates like any other, so on a
/// replica "now minus the heartbeat" is how far behind that replica applies, measured the same way on MySQL and
/// MariaDB, whatever the replication topology (Seconds_Behind_Master is whole seconds and lies under some setups).
/// </summary>
public sealed class MySqlHeartbeat : IAsyncDisposable
{
    public const int HeartbeatId = 1;

    private readonly string _connectionString;
    private readonly TableName _logTable;
    private readonly TimedWriteLoop _loop;

    public MySqlHeartbeat(string connectionString, TableName logTable, TimeSpan interval)
    {
        _connectionString = connectionString;
        _logTable = logTable;
        _loop = new TimedWriteLoop(WriteAsync, interval);
    }

    public long Beats => _loop.Writes;

    /// <summary>Creates the bookkeeping table (heartbeats and checkpoints) if it does not exist yet.</summary>
    public static async Task CreateLogTableAsync(string connectionString, TableName logTable, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(logTable);
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand(
            $"CREATE TABLE IF NOT EXISTS {MySqlSql.Quote(logTable)} (id INT NOT NULL PRIMARY KEY, ts TIMESTAMP(6) NOT NULL, value LONGTEXT NULL) ENGINE=InnoDB",
            connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public Task BeatAsync(CancellationToken cancellationToken) => _loop.WriteAsync(cancellationToken);

    /// <summary>The slowest heartbeat write within the window (see <see cref="TimedWriteLoop"/>).</summary>
    public TimeSpan SlowestRecentWrite(TimeSpan window) => _loop.SlowestRecentWrite(window);

    /// <summary>Pauses the copy while heartbeat writes are slower than the limit.</summary>
    public ThresholdSignal LatencySignal(TimeSpan limit) => _loop.LatencySignal(limit);

    public void Start() => _loop.Start();

    public ValueTask DisposeAsync() => _loop.DisposeAsync();

    private async Task WriteAsync(CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand(
            $"INSERT INTO {MySqlSql.Quote(_logTable)} (id, ts) VALUES ({HeartbeatId}, NOW(6)) ON DUPLICATE KEY UPDATE ts = NOW(6)", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
