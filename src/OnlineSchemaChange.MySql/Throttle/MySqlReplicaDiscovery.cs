using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.MySql.Throttle;

/// <summary>The replicas found from the primary, and what could not be found (each note says why and what to do).</summary>
public sealed record DiscoveredReplicas(IReadOnlyList<ConnectionTarget> Replicas, IReadOnlyList<string> Notes);

/// <summary>
/// Finds the primary's replicas so their lag can throttle the copy without listing them. SHOW SLAVE HOSTS (SHOW
/// REPLICAS on MySQL 8.4) lists replicas that set report_host; the binlog dump threads in the processlist show every
/// connected reader, so a reader no reported replica accounts for is tried at its address on the primary's port.
/// Each candidate is connected to with the primary's credentials and kept only if it is a different server. Binlog
/// streams of osc runs (this one's, other migrations', or one that ended a moment ago and whose thread the server has
/// not yet noticed) register under <see cref="BinlogClientOptions.OscReportHost"/>: they are not replicas, and each
/// accounts for one reader that is neither a replica nor reachable.
/// </summary>
public static class MySqlReplicaDiscovery
{
    private const string ProcesslistReader = "binlog reader in the processlist";

    public static async Task<DiscoveredReplicas> DiscoverAsync(ConnectionTarget primary, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(primary);
        var notes = new List<string>();
        int oscStreams = 0;
        // Readers: for an address taken from the processlist, how many of its binlog readers no reported replica explains.
        var candidates = new List<(string Host, int Port, string Source, int Readers)>();
        uint primaryId;
        var dumpHosts = new List<string>();
        await using (MySqlConnection connection = await MySqlConnections.OpenAsync(primary, cancellationToken))
        {
            primaryId = Convert.ToUInt32(await ScalarAsync(connection, "SELECT @@server_id", cancellationToken), CultureInfo.InvariantCulture);
            foreach ((uint serverId, string host, int port) in await ReportedReplicasAsync(connection, cancellationToken))
            {
                if (host == BinlogClientOptions.OscReportHost)
                {
                    oscStreams++;
                    continue;
                }

                if (host.Length == 0 || port == 0)
                {
                    notes.Add($"replica with server_id {serverId} does not report its address (report_host/report_port unset)");
                    continue;
                }

                candidates.Add((host, port, $"server_id {serverId}", 1));
            }

            await using var command = new MySqlCommand("SELECT HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'", connection);
            await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                dumpHosts.Add(HostOnly(reader.GetString(0)));
            }
        }

        // A reader no reported replica accounts for: a replica without report_host, or another binlog client.
        var reportedHosts = candidates.Select(c => c.Host).ToList();
        foreach (string host in dumpHosts)
        {
            int reported = reportedHosts.FindIndex(h => h.Equals(host, StringComparison.OrdinalIgnoreCase));
            if (reported >= 0)
            {
                reportedHosts.RemoveAt(reported);
            }
            else if (host.Length > 0)
            {
                int known = candidates.FindIndex(c => c.Host == host && c.Port == primary.Port);
                if (known < 0)
                {
                    candidates.Add((host, primary.Port, ProcesslistReader, 1));
                }
                else if (candidates[known].Source == ProcesslistReader)
                {
                    candidates[known] = candidates[known] with { Readers = candidates[known].Readers + 1 };
                }
            }
        }

        var replicas = new List<ConnectionTarget>();
        foreach ((string host, int port, string source, int readers) in candidates)
        {
            ConnectionTarget replica = primary with { Host = host, Port = port };
            try
            {
                // No default database: a replica that has not replicated the database yet is lagging, the one to watch.
                await using MySqlConnection connection = await MySqlConnections.OpenAsync(replica with { Database = null }, cancellationToken);
                uint id = Convert.ToUInt32(await ScalarAsync(connection, "SELECT @@server_id", cancellationToken), CultureInfo.InvariantCulture);
                if (id != primaryId)
                {
                    if (!replicas.Any(r => r.Host == host && r.Port == port))
                    {
                        replicas.Add(replica);
                    }
                }
                else if (!OscStreamsAccountFor(source, readers, ref oscStreams))
                {
                    notes.Add($"{host}:{port} ({source}) is the primary itself, so the replica reading binlogs from {host} was not found");
                }
            }
            catch (Exception e) when (e is MySqlException or Core.OscException)
            {
                if (!OscStreamsAccountFor(source, readers, ref oscStreams))
                {
                    notes.Add($"{host}:{port} ({source}) could not be reached: {e.Message}");
                }
            }
        }

        return new DiscoveredReplicas(replicas, notes);
    }

    /// <summary>
    /// Whether the readers seen only in the processlist at an address that is no replica can all be osc's streams,
    /// each counted once.
    /// </summary>
    private static bool OscStreamsAccountFor(string source, int readers, ref int oscStreams)
    {
        if (source != ProcesslistReader)
        {
            return false;
        }

        int ours = Math.Min(readers, oscStreams);
        oscStreams -= ours;
        return ours == readers;
    }

    /// <summary>What to check when a listed replica cannot be used.</summary>
    public const string ListedReplicaFix =
        "Check the replica's address, and that the primary's user and password work there; a listed replica whose lag cannot be measured keeps the copy paused.";

    /// <summary>
    /// Refuses a listed replica (<paramref name="replicas"/>: as the operator named it, and where to connect) that
    /// cannot be reached or is the primary itself: its lag could never be measured, and the copy would stay paused.
    /// </summary>
    public static async Task CheckListedAsync(ConnectionTarget primary, IReadOnlyList<(string Named, ConnectionTarget Target)> replicas, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentNullException.ThrowIfNull(replicas);
        uint primaryId;
        await using (MySqlConnection connection = await MySqlConnections.OpenAsync(primary with { Database = null }, cancellationToken))
        {
            primaryId = Convert.ToUInt32(await ScalarAsync(connection, "SELECT @@server_id", cancellationToken), CultureInfo.InvariantCulture);
        }

        foreach ((string named, ConnectionTarget replica) in replicas)
        {
            uint id;
            try
            {
                // No default database: a replica that has not replicated the database yet is lagging, not wrong.
                await using MySqlConnection connection = await MySqlConnections.OpenAsync(replica with { Database = null }, cancellationToken);
                id = Convert.ToUInt32(await ScalarAsync(connection, "SELECT @@server_id", cancellationToken), CultureInfo.InvariantCulture);
            }
            catch (Core.OscException e) when (e.InnerException is MySqlException)
            {
                throw new Core.OscException($"--replica {named} cannot be used: {e.Message}", ListedReplicaFix, e);
            }

            if (id == primaryId)
            {
                throw new Core.OscException($"--replica {named} is the primary itself (server_id {id}).", "List the primary's replicas, not the primary.");
            }
        }
    }

    /// <summary>The registered binlog readers: SHOW SLAVE HOSTS (SHOW REPLICAS on MySQL 8.4).</summary>
    internal static async Task<List<(uint ServerId, string Host, int Port)>> ReportedReplicasAsync(MySqlConnection connection, CancellationToken cancellationToken)
    {
        // Server id, host and port are the first three columns of both statements.
        foreach (string sql in new[] { "SHOW SLAVE HOSTS", "SHOW REPLICAS" })
        {
            try
            {
                var rows = new List<(uint, string, int)>();
                await using var command = new MySqlCommand(sql, connection);
                await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    rows.Add((Convert.ToUInt32(reader.GetValue(0), CultureInfo.InvariantCulture), reader.IsDBNull(1) ? "" : reader.GetString(1),
                        Convert.ToInt32(reader.GetValue(2), CultureInfo.InvariantCulture)));
                }

                return rows;
            }
            catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.ParseError)
            {
                // MySQL 8.4 removed SHOW SLAVE HOSTS; older servers do not know SHOW REPLICAS.
            }
        }

        return [];
    }

    private static string HostOnly(string hostAndPort)
    {
        if (hostAndPort.StartsWith('['))
        {
            int close = hostAndPort.IndexOf(']', StringComparison.Ordinal);
            return close > 0 ? hostAndPort[1..close] : hostAndPort;
        }

        int colon = hostAndPort.LastIndexOf(':');
        return colon > 0 && hostAndPort.IndexOf(':', StringComparison.Ordinal) == colon ? hostAndPort[..colon] : hostAndPort;
    }

    private static async Task<object?> ScalarAsync(MySqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(sql, connection);
        return await command.ExecuteScalarAsync(cancellationToken);
    }
}
