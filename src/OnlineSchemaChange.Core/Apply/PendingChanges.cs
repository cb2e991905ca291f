using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Apply;

/// <summary>
/// Changes waiting to be written to the shadow table, de-duplicated by primary key: only the last state of each key
/// matters, because the applier writes whole rows (REPLACE / upsert) and deletes by key, both idempotent. A
/// primary-key update is a delete of the old key and an upsert of the new one. Ten thousand updates of one hot row
/// become one write.
/// An update that left columns unsent (<see cref="UnchangedValue"/>) is merged into the pending row of its key, which
/// then supplies those values; with no pending row it stays partial, and names the key whose row in the shadow table
/// holds the missing values as it was before the batch (its own, or the one it moved from).
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
        RowKey? fillFrom = null;
        IReadOnlyList<object?>? row = change.Kind == RowChangeKind.Delete ? null : change.Row;
        if (change.Kind == RowChangeKind.Update && change.IsPartial)
        {
            (row, fillFrom) = Merge(change.PreviousKey ?? change.Key, change.Row!);
        }

        if (change.MovesKey)
        {
            Set(change.PreviousKey!, null, null);
        }

        Set(change.Key, row, fillFrom);
    }

    /// <summary>Takes everything pending: the keys to delete, then the rows to upsert in the order they last changed.</summary>
    public PendingBatch Drain()
    {
        var deletes = new List<RowKey>();
        var upserts = new List<(RowKey, IReadOnlyList<object?>)>();
        var partials = new List<PartialUpdate>();
        foreach (Entry entry in _order)
        {
            if (entry.Row is null)
            {
                deletes.Add(entry.Key);
            }
            else if (entry.FillFrom is not null)
            {
                partials.Add(new PartialUpdate(entry.Key, entry.FillFrom, entry.Row));
            }
            else
            {
                upserts.Add((entry.Key, entry.Row));
            }
        }

        var batch = new PendingBatch(deletes, upserts, Received) { Partials = partials };
        _byKey.Clear();
        _order.Clear();
        Received = 0;
        return batch;
    }

    /// <summary>
    /// The update's sent values over the pending row of the key it came from. A pending whole row fills every unsent
    /// value; a pending partial row fills what it has and passes on where the rest is to be found. With nothing
    /// pending (or a pending delete, which an update cannot follow unless replayed twice) the rest is in the shadow
    /// table under the source key.
    /// </summary>
    private (IReadOnlyList<object?> Row, RowKey? FillFrom) Merge(RowKey source, IReadOnlyList<object?> row)
    {
        if (!_byKey.TryGetValue(source, out LinkedListNode<Entry>? node) || node.Value.Row is not { } earlier)
        {
            return (row, source);
        }

        var merged = new object?[row.Count];
        for (int i = 0; i < merged.Length; i++)
        {
            merged[i] = row[i] is UnchangedValue && i < earlier.Count ? earlier[i] : row[i];
        }

        return (merged, UnchangedValue.AnyIn(merged) ? node.Value.FillFrom ?? source : null);
    }

    private void Set(RowKey key, IReadOnlyList<object?>? row, RowKey? fillFrom)
    {
        if (_byKey.TryGetValue(key, out LinkedListNode<Entry>? node))
        {
            _order.Remove(node);
        }

        _byKey[key] = _order.AddLast(new Entry(key, row, fillFrom));
    }

    private sealed record Entry(RowKey Key, IReadOnlyList<object?>? Row, RowKey? FillFrom);
}

/// <summary>
/// What one flush writes: deletes first (a row that goes cannot block one that arrives), then upserts, each with its
/// key in the original table. <see cref="Partials"/> are rows with unsent columns, which only engines whose stream
/// omits unchanged values produce.
/// </summary>
public sealed record PendingBatch(IReadOnlyList<RowKey> Deletes, IReadOnlyList<(RowKey Key, IReadOnlyList<object?> Row)> Upserts, long ChangesReceived)
{
    public IReadOnlyList<PartialUpdate> Partials { get; init; } = [];

    public bool IsEmpty => Deletes.Count == 0 && Upserts.Count == 0 && Partials.Count == 0;

    public int Rows => Deletes.Count + Upserts.Count + Partials.Count;
}

/// <summary>
/// A row to write under <paramref name="Key"/> whose <see cref="UnchangedValue"/> columns keep the values of the
/// shadow table's row under <paramref name="FillFrom"/> as it was before the batch (the same key unless the update
/// moved the row). Only the sent columns may be written.
/// </summary>
public sealed record PartialUpdate(RowKey Key, RowKey FillFrom, IReadOnlyList<object?> Row)
{
    public bool MovesKey => !Key.Equals(FillFrom);
}
