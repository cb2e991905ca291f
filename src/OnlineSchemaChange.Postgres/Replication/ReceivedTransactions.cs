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

    public bool ContainsAny(IEnumerable<uint> xids)
    {
        ArgumentNullException.ThrowIfNull(xids);
        lock (_lock)
        {
            return xids.Any(_ids.Contains);
        }
    }
}
