using Npgsql;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Throttle;

/// <summary>
/// Updates one row of the bookkeeping table every interval, committed the way the application's writes are (the
/// session's synchronous_commit), and times it: the latency <c>--max-write-latency-millis</c> paces the copy by.
/// </summary>
public sealed class PostgresHeartbeat : IAsyncDisposable
{
    /// <summary>The heartbeat's row in <c>&lt;table&gt;_osc_log</c>; rows 1 and up hold the run's own records.</summary>
    public const int HeartbeatId = 0;

    private readonly string _connectionString;
    private readonly TableName _logTable;
    private readonly TimedWriteLoop _loop;

    public PostgresHeartbeat(string connectionString, TableName logTable, TimeSpan interval)
    {
        _connectionString = connectionString;
        _logTable = logTable;
        _loop = new TimedWriteLoop(WriteAsync, interval);
    }

    public long Beats => _loop.Writes;

    /// <summary>Pauses the copy while heartbeat writes are slower than the limit.</summary>
    public ThresholdSignal LatencySignal(TimeSpan limit) => _loop.LatencySignal(limit);

    public void Start() => _loop.Start();

    public ValueTask DisposeAsync() => _loop.DisposeAsync();

    private async Task WriteAsync(CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"INSERT INTO {PostgresSql.Quote(_logTable)} (id, value) VALUES ({HeartbeatId}, 'heartbeat') " +
            "ON CONFLICT (id) DO UPDATE SET updated_at = clock_timestamp()", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
