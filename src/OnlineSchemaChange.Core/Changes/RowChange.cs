namespace OnlineSchemaChange.Core.Changes;

public enum RowChangeKind
{
    Insert,
    Update,
    Delete,
}

/// <summary>
/// One row changed on the original table, as replication delivered it. Row values are in the original table's column
/// order; <see cref="Row"/> is the row after the change (null for a delete). An update that moved the primary key has
/// a <see cref="Key"/> that differs from <see cref="PreviousKey"/>. An update's row may hold
/// <see cref="UnchangedValue.Instance"/> for columns the stream did not send: their values are the row's before the update.
/// </summary>
public sealed record RowChange(RowChangeKind Kind, RowKey Key, IReadOnlyList<object?>? Row, RowKey? PreviousKey = null)
{
    public static RowChange Insert(RowKey key, IReadOnlyList<object?> row) => new(RowChangeKind.Insert, key, row);

    public static RowChange Update(RowKey previousKey, RowKey key, IReadOnlyList<object?> row) => new(RowChangeKind.Update, key, row, previousKey);

    public static RowChange Delete(RowKey key) => new(RowChangeKind.Delete, key, null);

    /// <summary>An update that left some columns unsent: it says nothing of their values, only that they did not change.</summary>
    public bool IsPartial => Row is not null && UnchangedValue.AnyIn(Row);

    public bool MovesKey => Kind == RowChangeKind.Update && PreviousKey is not null && !PreviousKey.Equals(Key);
}
