using Npgsql;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Throttle;

/// <summary>
/// Updates one row of the bookkeeping table every interval, committed the way the application's writes are (the
/// session's synchronous_commit), and times it: the latency <c>--max-write-latency-millis</c> paces the copy by.
/// </summary>
public static class PostgresHeartbeat
{
    /// <summary>The heartbeat's row in <c>&lt;table&gt;_osc_log</c>; rows 1 and up hold the run's own records.</summary>
    public const int HeartbeatId = 0;

    /// <summary>The heartbeat, timed; not yet started.</summary>
    public static TimedWriteLoop Create(string connectionString, TableName logTable, TimeSpan interval) =>
        new(async cancellationToken =>
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand(
                $"INSERT INTO {PostgresSql.Quote(logTable)} (id, value) VALUES ({HeartbeatId}, 'heartbeat') " +
                "ON CONFLICT (id) DO UPDATE SET updated_at = clock_timestamp()", connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }, interval);
}
