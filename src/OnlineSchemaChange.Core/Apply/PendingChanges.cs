using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Apply;

/// <summary>
/// Changes waiting to be written to the shadow table, de-duplicated by primary key: only the last state of each key
/// matters, because the applier writes whole rows (REPLACE / upsert) and deletes by key, both idempotent. A
/// primary-key update is a delete of the old key and an upsert of the new one. Ten thousand updates of one hot row
/// become one write.
/// </summary>
public sealed class PendingChanges
{
    // The order in which keys last changed is kept so a batch is deterministic. Writers that delete every key of a
    // batch before inserting (MySqlChangeWriter) may reorder freely: the rows are then the source's state at the
    // batch's end, which cannot conflict on a unique key.
    private readonly Dictionary<RowKey, LinkedListNode<Entry>> _byKey = [];
    private readonly LinkedList<Entry> _order = new();

    /// <summary>Changes received since the last drain, before de-duplication.</summary>
    public long Received { get; private set; }

    /// <summary>Distinct keys pending.</summary>
    public int Count => _byKey.Count;

    public void Add(RowChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        Received++;
        if (change.MovesKey)
        {
            Set(change.PreviousKey!, null);
        }

        Set(change.Key, change.Kind == RowChangeKind.Delete ? null : change.Row);
    }

    /// <summary>Takes everything pending: the keys to delete, then the rows to upsert in the order they last changed.</summary>
    public PendingBatch Drain()
    {
        var deletes = new List<RowKey>();
        var upserts = new List<(RowKey, IReadOnlyList<object?>)>();
        foreach (Entry entry in _order)
        {
            if (entry.Row is null)
            {
                deletes.Add(entry.Key);
            }
            else
            {
                upserts.Add((entry.Key, entry.Row));
            }
        }

        var batch = new PendingBatch(deletes, upserts, Received);
        _byKey.Clear();
        _order.Clear();
        Received = 0;
        return batch;
    }

    private void Set(RowKey key, IReadOnlyList<object?>? row)
    {
        if (_byKey.TryGetValue(key, out LinkedListNode<Entry>? node))
        {
            _order.Remove(node);
        }

        _byKey[key] = _order.AddLast(new Entry(key, row));
    }

    private sealed record Entry(RowKey Key, IReadOnlyList<object?>? Row);
}

/// <summary>
/// What one flush writes: deletes first (a row that goes cannot block one that arrives), then upserts, each with its
/// key in the original table.
/// </summary>
public sealed record PendingBatch(IReadOnlyList<RowKey> Deletes, IReadOnlyList<(RowKey Key, IReadOnlyList<object?> Row)> Upserts, long ChangesReceived)
{
    public bool IsEmpty => Deletes.Count == 0 && Upserts.Count == 0;
}
