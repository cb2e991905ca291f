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
    /// Replica lag in milliseconds: the primary's clock now, less the last heartbeat (<see cref="MySqlHeartbeat"/>,
    /// written with the primary's clock) the replica has applied. Both times are the primary's, so a replica whose
    /// clock is ahead does not hide its lag, nor one behind invent some. A heartbeat, or a bookkeeping table, the
    /// replica has not seen yet counts as lag: the copy waits until every replica is known to keep up.
    /// </summary>
    public static ThresholdSignal ReplicaLag(MySqlPrimaryClock primary, string replicaConnectionString, TableName logTable, TimeSpan maxLag)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentNullException.ThrowIfNull(logTable);
        var builder = new MySqlConnectionStringBuilder(replicaConnectionString);
        // TIMESTAMP as seconds since the epoch: the sessions' time zones, which may differ between the servers, drop out.
        string heartbeat = $"SELECT UNIX_TIMESTAMP(ts) FROM {MySqlSql.Quote(logTable)} WHERE id = {MySqlHeartbeat.HeartbeatId}";
        return new ThresholdSignal($"replica lag on {builder.Server}:{builder.Port}", maxLag.TotalMilliseconds, async cancellationToken =>
        {
            decimal applied;
            await using (var replica = new MySqlConnection(replicaConnectionString))
            {
                await replica.OpenAsync(cancellationToken);
                await using var read = new MySqlCommand(heartbeat, replica);
                try
                {
                    if (await read.ExecuteScalarAsync(cancellationToken) is not { } value || value is DBNull)
                    {
                        return double.PositiveInfinity;
                    }

                    applied = Convert.ToDecimal(value, CultureInfo.InvariantCulture);
                }
                catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchTable)
                {
                    return double.PositiveInfinity;
                }
            }

            // Read after the replica's heartbeat, so the difference errs towards more lag, never less.
            return Math.Max(0, (double)(await primary.NowAsync(cancellationToken) - applied) * 1000);
        }, " ms");
    }

    /// <summary>
    /// Checks, before anything starts, that every status variable a --max-load / --critical-load names exists: a
    /// misspelled one could never be measured, and would hold the copy (or never abort) for the whole run.
    /// </summary>
    public static async Task ValidateLoadAsync(string connectionString, string spec, string optionName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var variables = Load(connectionString, spec, optionName).Select(s => s.Name).ToList();
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        var known = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        await using (var command = new MySqlCommand("SHOW GLOBAL STATUS", connection))
        await using (MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                known.Add(reader.GetString(0));
            }
        }

        foreach (string variable in variables)
        {
            if (!known.Contains(variable))
            {
                string? near = known.MinBy(k => EditDistance(k.ToUpperInvariant(), variable.ToUpperInvariant()));
                throw new OscException($"{optionName}: the server has no status variable {variable}.",
                    $"Use a name SHOW GLOBAL STATUS lists{(near is null ? "" : $", such as {near}")}.");
            }
        }
    }

    private static int EditDistance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            previous = current;
        }

        return previous[b.Length];
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
