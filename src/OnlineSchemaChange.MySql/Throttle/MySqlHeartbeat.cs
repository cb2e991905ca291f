using MySqlConnector;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Throttle;

/// <summary>
/// Writes the primary's clock into the bookkeeping table every interval. The row replicates like any other, so on a
/// replica "now minus the heartbeat" is how far behind that replica applies, measured the same way on MySQL and
/// MariaDB, whatever the replication topology (Seconds_Behind_Master is whole seconds and lies under some setups).
/// </summary>
public static class MySqlHeartbeat
{
    public const int HeartbeatId = 1;

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

    /// <summary>
    /// The heartbeat, timed (its latency paces the copy with --max-write-latency-millis); not yet started. Every beat
    /// goes through one session, as an application's writes go through pooled ones: a connection a beat cost the
    /// server a login ten times a second and counted the login in the latency. A beat that fails drops the session and
    /// the next one opens another.
    /// </summary>
    public static TimedWriteLoop Create(string connectionString, TableName logTable, TimeSpan interval)
    {
        ArgumentNullException.ThrowIfNull(logTable);
        var session = new MySqlReusedSession(connectionString);
        string sql = $"INSERT INTO {MySqlSql.Quote(logTable)} (id, ts) VALUES ({HeartbeatId}, NOW(6)) ON DUPLICATE KEY UPDATE ts = NOW(6)";
        // A missed beat is not written again: its latency is the measure, and the next beat follows an interval later.
        return new TimedWriteLoop(cancellationToken => session.RunAsync(async connection =>
        {
            await using var command = new MySqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }, againOnStale: false, cancellationToken), interval, session);
    }
}
