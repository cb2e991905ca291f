using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Throttle;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>Whether the copy logs its writes under skip_replication, and why not when it could have.</summary>
public sealed record CopyEventFilterDecision(bool MarkCopy, string? Note);

/// <summary>
/// Keeps the copy's own rows out of osc's binlog stream on MariaDB. With binlog_format = ROW every row the copy writes
/// into the shadow is logged as a full row image, and the server would send each to osc only for osc to drop it: the
/// stream wants the original's changes. A MariaDB session can log its writes marked skip_replication, and the server
/// does not send marked events to a binlog reader whose own session sets skip_replication. So the copy marks its
/// writes and the stream asks to be spared them; they stay in the binlog, for replicas and point-in-time recovery.
/// </summary>
/// <remarks>
/// The mark reaches every replica. One configured with replicate_events_marked_for_skip other than REPLICATE would not
/// apply the copied rows, and its table would lack them after the swap. So by default (<c>auto</c>) the copy marks its
/// writes only when every binlog reader of the primary, and of each replica in turn, is a replica that was reached and
/// replicates marked events; anything unknown keeps the rows in the stream, which costs time only. The stream also
/// drops marked events of other sessions, so an application writing the table under skip_replication (only of use with
/// replicas that filter marked events, which then forbid the mark) must run with <c>--copy-skip-replication off</c>.
/// </remarks>
public static class CopyEventFilter
{
    private const int MaxDepth = 3;

    /// <summary>
    /// Decides for <paramref name="requested"/>: true forces the mark, false never marks, null checks every binlog reader.
    /// <paramref name="primaryReaders"/> is the primary's discovery when the caller has made it already (to watch lag).
    /// </summary>
    public static async Task<CopyEventFilterDecision> DecideAsync(MySqlConnection connection, ConnectionTarget primary, bool? requested,
        CancellationToken cancellationToken, DiscoveredReplicas? primaryReaders = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (requested == false)
        {
            return new CopyEventFilterDecision(false, null);
        }

        if (!connection.ServerVersion.Contains("MariaDB", StringComparison.OrdinalIgnoreCase))
        {
            return requested == true
                ? throw new OscException("--copy-skip-replication on needs MariaDB: MySQL has no skip_replication, so the copy's rows stay in osc's binlog stream.",
                    "Leave --copy-skip-replication out (auto) on MySQL.")
                : new CopyEventFilterDecision(false, null);
        }

        // The copy's connections and the stream set the flag on their sessions: a server that refuses it here would
        // fail every chunk.
        try
        {
            await using var trial = new MySqlCommand("SET SESSION skip_replication = 1; SET SESSION skip_replication = 0", connection);
            await trial.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (MySqlException e)
        {
            return requested == true
                ? throw new OscException($"--copy-skip-replication on: the server refuses SET SESSION skip_replication ({e.Message}).",
                    "Leave --copy-skip-replication out (auto), or grant what the server asks for.")
                : new CopyEventFilterDecision(false, $"The copy's rows are streamed back to osc with the table's changes, because the server refuses SET SESSION skip_replication ({e.Message}).");
        }

        if (requested == true)
        {
            return new CopyEventFilterDecision(true, null);
        }

        string? unknown = await FindUncheckedReaderAsync(primary, primaryReaders, 0, cancellationToken);
        return unknown is null
            ? new CopyEventFilterDecision(true, null)
            : new CopyEventFilterDecision(false,
                $"The copy's rows are streamed back to osc with the table's changes, which costs the server and osc time, because {unknown}. " +
                "If every replica replicates events marked skip_replication (replicate_events_marked_for_skip = REPLICATE, the default), " +
                "--copy-skip-replication on leaves them out.");
    }

    /// <summary>Why some reader of <paramref name="server"/>'s binlog might not apply marked events, or null when none.</summary>
    private static async Task<string?> FindUncheckedReaderAsync(ConnectionTarget server, DiscoveredReplicas? known, int depth,
        CancellationToken cancellationToken)
    {
        DiscoveredReplicas found = known ?? await MySqlReplicaDiscovery.DiscoverAsync(server, cancellationToken);
        if (found.Notes.Count > 0)
        {
            return $"a binlog reader of {server.Host}:{server.Port} could not be checked ({found.Notes[0]})";
        }

        foreach (ConnectionTarget replica in found.Replicas)
        {
            string where = $"{replica.Host}:{replica.Port}";
            string setting;
            try
            {
                await using MySqlConnection connection = await MySqlConnections.OpenAsync(replica with { Database = null }, cancellationToken);
                await using var command = new MySqlCommand("SELECT @@global.replicate_events_marked_for_skip", connection);
                setting = Convert.ToString(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture) ?? "";
            }
            catch (MySqlException e)
            {
                return $"replica {where} could not be asked how it treats events marked skip_replication ({e.Message})";
            }

            if (!setting.Equals("REPLICATE", StringComparison.OrdinalIgnoreCase))
            {
                return $"replica {where} has replicate_events_marked_for_skip = {setting} and would not apply marked rows";
            }

            if (depth + 1 >= MaxDepth)
            {
                return $"the replication chain below {where} is deeper than osc checks";
            }

            string? below = await FindUncheckedReaderAsync(replica with { Database = null }, null, depth + 1, cancellationToken);
            if (below is not null)
            {
                return below;
            }
        }

        return null;
    }
}
