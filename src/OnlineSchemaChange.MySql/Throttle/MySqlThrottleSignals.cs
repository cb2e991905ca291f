using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Throttle;

/// <summary>The MySQL/MariaDB measurements the throttler acts on.</summary>
public static class MySqlThrottleSignals
{
    /// <summary>
    /// Replica lag in milliseconds, read from our heartbeat on the replica. A heartbeat the replica has not seen yet
    /// counts as lag: the copy waits until every replica is known to keep up.
    /// </summary>
    public static ThresholdSignal ReplicaLag(string replicaConnectionString, TableName logTable, TimeSpan maxLag)
    {
        ArgumentNullException.ThrowIfNull(logTable);
        var builder = new MySqlConnectionStringBuilder(replicaConnectionString);
        return new ThresholdSignal($"replica lag on {builder.Server}:{builder.Port}", maxLag.TotalMilliseconds, async cancellationToken =>
        {
            await using var connection = new MySqlConnection(replicaConnectionString);
            await connection.OpenAsync(cancellationToken);
            await using var command = new MySqlCommand(
                $"SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) / 1000 FROM {MySqlSql.Quote(logTable)} WHERE id = {MySqlHeartbeat.HeartbeatId}", connection);
            object? lag = await command.ExecuteScalarAsync(cancellationToken);
            return lag is null or DBNull ? double.PositiveInfinity : Convert.ToDouble(lag, CultureInfo.InvariantCulture);
        }, " ms");
    }

    /// <summary>
    /// Signals for "Threads_running=50,Threads_connected=500" (gh-ost's --max-load / --critical-load syntax): one per
    /// status variable, each above its limit when SHOW GLOBAL STATUS says so.
    /// </summary>
    public static IReadOnlyList<ThresholdSignal> Load(string connectionString, string spec, string optionName)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var signals = new List<ThresholdSignal>();
        foreach (string part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || pair[0].Length == 0 || !double.TryParse(pair[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double limit))
            {
                throw new OscException($"{optionName} '{part}' is not of the form Variable=number.", $"Write for example {optionName} Threads_running=50.");
            }

            string variable = pair[0];
            signals.Add(new ThresholdSignal(variable, limit, async cancellationToken =>
            {
                await using var connection = new MySqlConnection(connectionString);
                await connection.OpenAsync(cancellationToken);
                await using var command = new MySqlCommand("SHOW GLOBAL STATUS LIKE @v", connection);
                command.Parameters.AddWithValue("@v", variable);
                await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
                if (!await reader.ReadAsync(cancellationToken))
                {
                    throw new OscException($"The server has no status variable {variable}.", $"Check the name given to {optionName}.");
                }

                return double.Parse(reader.GetString(1), CultureInfo.InvariantCulture);
            }));
        }

        return signals;
    }
}
