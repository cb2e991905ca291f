namespace OnlineSchemaChange.Postgres.Replication;

/// <summary>
/// The ids of the most recent transactions the stream has begun to pass on (recorded at their BEGIN, before any of
/// their rows reaches the applier; pgoutput sends a transaction only once it has committed). A copy chunk checks its snapshot
/// against them: a commit can reach the stream a moment before it becomes visible to new snapshots (the commit record
/// is flushed before the transaction leaves the running set), and a chunk that read without it could bring back a
/// row the replay already deleted. See docs/correctness.md.
/// </summary>
public sealed class ReceivedTransactions(int capacity = 1 << 16)
{
    private readonly object _lock = new();
    private readonly HashSet<uint> _ids = [];
    private readonly Queue<uint> _order = new();

    public void Add(uint xid)
    {
        lock (_lock)
        {
            if (!_ids.Add(xid))
            {
                return;
            }

            _order.Enqueue(xid);
            if (_order.Count > capacity)
            {
                _ids.Remove(_order.Dequeue());
            }
        }
    }

    /// <summary>
    /// Whether a snapshot with running set <paramref name="xip"/> and upper bound <paramref name="xmax"/> misses a
    /// transaction the stream has passed on. A snapshot treats as invisible both the ids it lists as running and every
    /// id at or past its xmax, which it does not list: a transaction that was the newest to start, committed to the
    /// WAL but not yet out of the running set, is past xmax rather than in the list.
    /// </summary>
    public bool AnyInvisibleTo(IReadOnlyCollection<uint> xip, uint xmax)
    {
        ArgumentNullException.ThrowIfNull(xip);
        lock (_lock)
        {
            // Ids compare modulo 2^32 as the server compares them; the ids kept here are recent, far inside 2^31.
            return _ids.Any(id => unchecked((int)(id - xmax)) >= 0) || xip.Any(_ids.Contains);
        }
    }
}
