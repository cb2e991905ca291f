using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.MySql.Throttle;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>
/// Picks the server id osc's binlog stream registers with. A server keeps one binlog reader per server id: when a
/// reader registers with an id already in use, the server ends the other reader's stream. A fixed id would let two
/// migrations on one server end each other's streams, and could end a replica's. So each run takes an id at random
/// from a range of its own, and never one the server or a registered reader uses.
/// </summary>
public static class StreamServerId
{
    /// <summary>The ids osc picks from: 0x0C5C0100 to 0x0C5CFFFF (0x0C5C0000 to 0x0C5C00FF are left to fixed choices).</summary>
    public const uint First = 0x0C5C0100, Last = 0x0C5CFFFF;

    public static async Task<uint> PickFreeAsync(MySqlConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var taken = new HashSet<uint>();
        await using (var own = new MySqlCommand("SELECT @@server_id", connection))
        {
            taken.Add(Convert.ToUInt32(await own.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture));
        }

        foreach ((uint serverId, _, _) in await MySqlReplicaDiscovery.ReportedReplicasAsync(connection, cancellationToken))
        {
            taken.Add(serverId);
        }

        return Pick(taken, Random.Shared);
    }

    /// <summary>A random id of the range that is not in <paramref name="taken"/>.</summary>
    public static uint Pick(IReadOnlySet<uint> taken, Random random)
    {
        ArgumentNullException.ThrowIfNull(taken);
        ArgumentNullException.ThrowIfNull(random);
        while (true)
        {
            var id = (uint)random.NextInt64(First, (long)Last + 1);
            if (!taken.Contains(id))
            {
                return id;
            }
        }
    }
}
