using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.MySql.Connection;

namespace OnlineSchemaChange.MySql.Throttle;

/// <summary>The replicas found from the primary, and what could not be found (each note says why and what to do).</summary>
public sealed record DiscoveredReplicas(IReadOnlyList<ConnectionTarget> Replicas, IReadOnlyList<string> Notes);

/// <summary>
/// Finds the primary's replicas so their lag can throttle the copy without listing them. SHOW SLAVE HOSTS (SHOW
/// REPLICAS on MySQL 8.4) lists replicas that set report_host; the binlog dump threads in the processlist show every
/// connected reader, so a reader no reported replica accounts for is tried at its address on the primary's port.
/// Each candidate is connected to with the primary's credentials and kept only if it is a different server.
/// </summary>
public static class MySqlReplicaDiscovery
{
    public static async Task<DiscoveredReplicas> DiscoverAsync(ConnectionTarget primary, IReadOnlySet<uint> ignoredServerIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentNullException.ThrowIfNull(ignoredServerIds);
        var notes = new List<string>();
        var candidates = new List<(string Host, int Port, string Source)>();
        uint primaryId;
        var dumpHosts = new List<string>();
        await using (MySqlConnection connection = await MySqlConnections.OpenAsync(primary, cancellationToken))
        {
            primaryId = Convert.ToUInt32(await ScalarAsync(connection, "SELECT @@server_id", cancellationToken), CultureInfo.InvariantCulture);
            foreach ((uint serverId, string host, int port) in await ReportedReplicasAsync(connection, cancellationToken))
            {
                if (ignoredServerIds.Contains(serverId))
                {
                    continue;
                }

                if (host.Length == 0 || port == 0)
                {
                    notes.Add($"replica with server_id {serverId} does not report its address (report_host/report_port unset)");
                    continue;
                }

                candidates.Add((host, port, $"server_id {serverId}"));
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
            else if (host.Length > 0 && !candidates.Any(c => c.Host == host && c.Port == primary.Port))
            {
                candidates.Add((host, primary.Port, "binlog reader in the processlist"));
            }
        }

        var replicas = new List<ConnectionTarget>();
        foreach ((string host, int port, string source) in candidates)
        {
            ConnectionTarget replica = primary with { Host = host, Port = port };
            try
            {
                // No default database: a replica that has not replicated the database yet is lagging, the one to watch.
                await using MySqlConnection connection = await MySqlConnections.OpenAsync(replica with { Database = null }, cancellationToken);
                uint id = Convert.ToUInt32(await ScalarAsync(connection, "SELECT @@server_id", cancellationToken), CultureInfo.InvariantCulture);
                if (id == primaryId)
                {
                    notes.Add($"{host}:{port} ({source}) is the primary itself, so the replica reading binlogs from {host} was not found");
                }
                else if (!ignoredServerIds.Contains(id) && !replicas.Any(r => r.Host == host && r.Port == port))
                {
                    replicas.Add(replica);
                }
            }
            catch (Exception e) when (e is MySqlException or Core.OscException)
            {
                notes.Add($"{host}:{port} ({source}) could not be reached: {e.Message}");
            }
        }

        return new DiscoveredReplicas(replicas, notes);
    }

    private static async Task<List<(uint ServerId, string Host, int Port)>> ReportedReplicasAsync(MySqlConnection connection, CancellationToken cancellationToken)
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
