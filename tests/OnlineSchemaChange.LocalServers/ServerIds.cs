namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// server_id values for the instances of this process: unique among them, and starting at a random base so two
/// processes' servers differ too (a replica must never share its primary's id, nor a binlog reader either).
/// </summary>
internal static class ServerIds
{
    private static int next = Random.Shared.Next(1_000, 1_000_000) * 100;

    public static int Next() => Interlocked.Increment(ref next);
}
