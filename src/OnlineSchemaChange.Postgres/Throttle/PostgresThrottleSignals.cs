using System.Globalization;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Throttle;

/// <summary>The PostgreSQL measurements the throttler acts on.</summary>
public static class PostgresThrottleSignals
{
    /// <summary>The names --max-load and --critical-load accept, each a count of client sessions from pg_stat_activity.</summary>
    public static IReadOnlyDictionary<string, string> LoadVariables { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["active_sessions"] = "state = 'active'",
        ["sessions"] = "true",
        ["lock_waits"] = "wait_event_type = 'Lock'",
        ["idle_in_transaction"] = "state LIKE 'idle in transaction%'",
    };

    /// <summary>
    /// The largest replay lag, in milliseconds, of the streaming replicas the primary reports in pg_stat_replication
    /// (logical walsenders, ours included, are not replicas). A replica that has replayed everything shows no lag.
    /// </summary>
    public static ThresholdSignal ReplicaLagOnPrimary(string connectionString, TimeSpan maxLag) =>
        new("replica lag (pg_stat_replication)", maxLag.TotalMilliseconds, async cancellationToken =>
            await MeasureAsync(connectionString, """
                SELECT coalesce(max(CASE WHEN replay_lsn IS NOT DISTINCT FROM sent_lsn THEN 0 ELSE extract(epoch FROM replay_lag)::float8 * 1000 END), 0)
                FROM pg_stat_replication
                WHERE pid NOT IN (SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active_pid IS NOT NULL)
                """, cancellationToken) ?? 0, " ms");

    /// <summary>
    /// Replay lag in milliseconds of a listed standby: the primary's clock now, less the last heartbeat
    /// (<see cref="PostgresHeartbeat"/>, written with the primary's clock) the standby has replayed. Both times are the
    /// primary's, so a skewed clock on the standby neither hides lag nor invents it; and a standby that receives no
    /// WAL at all (its walreceiver cut off) lags by the heartbeat's age, where comparing its received and replayed
    /// positions would show none. A standby that has not replayed the heartbeat yet, or the bookkeeping table's
    /// creation, counts as lagging: the copy waits until every standby is known to keep up.
    /// </summary>
    public static ThresholdSignal ReplicaLag(string primaryConnectionString, string replicaConnectionString, TableName logTable, TimeSpan maxLag)
    {
        ArgumentNullException.ThrowIfNull(logTable);
        var builder = new NpgsqlConnectionStringBuilder(replicaConnectionString);
        string heartbeat = $"SELECT extract(epoch FROM updated_at)::float8 FROM {PostgresSql.Quote(logTable)} WHERE id = {PostgresHeartbeat.HeartbeatId}";
        return new ThresholdSignal($"replica lag on {builder.Host}:{builder.Port}", maxLag.TotalMilliseconds, async cancellationToken =>
        {
            double? replayed;
            await using (var replica = new NpgsqlConnection(replicaConnectionString))
            {
                await replica.OpenAsync(cancellationToken);
                await using (var recovery = new NpgsqlCommand("SELECT pg_is_in_recovery()", replica))
                {
                    if (await recovery.ExecuteScalarAsync(cancellationToken) is not true)
                    {
                        throw new OscException($"{builder.Host}:{builder.Port} is not a replica (not in recovery).", "Give --replica the URI of a streaming replica of this server.");
                    }
                }

                try
                {
                    await using var read = new NpgsqlCommand(heartbeat, replica);
                    replayed = await read.ExecuteScalarAsync(cancellationToken) is double at ? at : null;
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
                {
                    replayed = null;
                }
            }

            if (replayed is null)
            {
                return double.PositiveInfinity;
            }

            // Read after the standby's heartbeat, so the difference errs towards more lag, never less.
            double now = (await MeasureAsync(primaryConnectionString, "SELECT extract(epoch FROM clock_timestamp())::float8", cancellationToken))!.Value;
            return Math.Max(0, (now - replayed.Value) * 1000);
        }, " ms");
    }

    /// <summary>Signals for "active_sessions=50,lock_waits=10": one per variable of <see cref="LoadVariables"/>.</summary>
    public static IReadOnlyList<ThresholdSignal> Load(string connectionString, string spec, string optionName)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var signals = new List<ThresholdSignal>();
        foreach (string part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (pair.Length != 2 || !double.TryParse(pair[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double limit))
            {
                throw new OscException($"{optionName} '{part}' is not of the form name=number.", $"Write for example {optionName} active_sessions=50.");
            }

            if (!LoadVariables.TryGetValue(pair[0], out string? condition))
            {
                throw new OscException($"{optionName} names {pair[0]}, which PostgreSQL does not measure here.",
                    $"Use one of {string.Join(", ", LoadVariables.Keys)} (client sessions counted in pg_stat_activity).");
            }

            string sql = $"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND {condition}";
            signals.Add(new ThresholdSignal(pair[0], limit, async cancellationToken => (await MeasureAsync(connectionString, sql, cancellationToken))!.Value));
        }

        return signals;
    }

    private static async Task<double?> MeasureAsync(string connectionString, string sql, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        object? value = await command.ExecuteScalarAsync(cancellationToken);
        return value is null or DBNull ? null : Convert.ToDouble(value, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Refuses a listed standby (<paramref name="standbys"/>: as the operator named it, and where to connect) that cannot
    /// be reached or is not in recovery: its lag could never be measured, and the copy would stay paused.
    /// </summary>
    public static async Task CheckListedStandbysAsync(IReadOnlyList<(string Named, ConnectionTarget Target)> standbys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(standbys);
        foreach ((string named, ConnectionTarget standby) in standbys)
        {
            bool inRecovery;
            try
            {
                await using NpgsqlConnection connection = await OpenStandbyAsync(standby, cancellationToken);
                await using var command = new NpgsqlCommand("SELECT pg_is_in_recovery()", connection);
                inRecovery = await command.ExecuteScalarAsync(cancellationToken) is true;
            }
            catch (OscException e) when (e.InnerException is NpgsqlException)
            {
                throw new OscException($"--replica {named} cannot be used: {e.Message}",
                    "Check the standby's address, and that the primary's user and password work there; a listed standby whose lag cannot be measured keeps the copy paused.", e);
            }

            if (!inRecovery)
            {
                throw new OscException($"--replica {named} is not a standby (pg_is_in_recovery() is false).", "List the primary's standbys, not the primary or another server.");
            }
        }
    }

    /// <summary>A standby that has not replayed the database's creation yet is lagging, not wrong: ask its maintenance database then.</summary>
    private static async Task<NpgsqlConnection> OpenStandbyAsync(ConnectionTarget standby, CancellationToken cancellationToken)
    {
        try
        {
            return await PostgresConnections.OpenAsync(standby, cancellationToken);
        }
        catch (OscException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.InvalidCatalogName })
        {
            return await PostgresConnections.OpenAsync(standby with { Database = "postgres" }, cancellationToken);
        }
    }
}
