using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

/// <summary>Updates whose unchanged columns the stream did not send (PostgreSQL's unchanged TOAST values).</summary>
public sealed class PendingPartialUpdateTests
{
    private static readonly UnchangedValue U = UnchangedValue.Instance;

    private static RowKey K(int id) => new(id);

    [Fact]
    public void A_partial_update_with_nothing_pending_stays_partial_and_fills_from_its_own_key()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(1), [1, "b", U]));

        PendingBatch batch = pending.Drain();

        Assert.Empty(batch.Upserts);
        Assert.Empty(batch.Deletes);
        PartialUpdate partial = Assert.Single(batch.Partials);
        Assert.Equal(K(1), partial.Key);
        Assert.Equal(K(1), partial.FillFrom);
        Assert.False(partial.MovesKey);
        Assert.Equal([1, "b", U], partial.Row);
    }

    [Fact]
    public void A_partial_update_after_a_pending_insert_becomes_a_whole_row_with_the_inserted_value()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Insert(K(1), [1, "a", "big document"]));
        pending.Add(RowChange.Update(K(1), K(1), [1, "b", U]));

        PendingBatch batch = pending.Drain();

        Assert.Empty(batch.Partials);
        var upsert = Assert.Single(batch.Upserts);
        Assert.Equal([1, "b", "big document"], upsert.Row);
    }

    [Fact]
    public void A_null_sent_earlier_is_kept_and_not_confused_with_an_unsent_value()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(1), [1, "a", null]));
        pending.Add(RowChange.Update(K(1), K(1), [1, U, U]));

        var upsert = Assert.Single(pending.Drain().Upserts);

        Assert.Equal([1, "a", null], upsert.Row);
    }

    [Fact]
    public void Two_partial_updates_of_one_key_merge_their_sent_columns()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(1), [1, "b", U, U]));
        pending.Add(RowChange.Update(K(1), K(1), [1, U, "c", U]));

        PendingBatch batch = pending.Drain();

        PartialUpdate partial = Assert.Single(batch.Partials);
        Assert.Equal([1, "b", "c", U], partial.Row);
        Assert.Equal(K(1), partial.FillFrom);
    }

    [Fact]
    public void A_partial_key_move_deletes_the_old_key_and_fills_the_new_row_from_it()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(2), [2, "b", U]));

        PendingBatch batch = pending.Drain();

        Assert.Equal(K(1), Assert.Single(batch.Deletes));
        PartialUpdate partial = Assert.Single(batch.Partials);
        Assert.Equal(K(2), partial.Key);
        Assert.Equal(K(1), partial.FillFrom);
        Assert.True(partial.MovesKey);
    }

    [Fact]
    public void A_partial_key_move_of_a_pending_row_takes_that_rows_values()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Insert(K(1), [1, "a", "doc"]));
        pending.Add(RowChange.Update(K(1), K(2), [2, "b", U]));

        PendingBatch batch = pending.Drain();

        Assert.Equal(K(1), Assert.Single(batch.Deletes));
        Assert.Empty(batch.Partials);
        Assert.Equal([2, "b", "doc"], Assert.Single(batch.Upserts).Row);
    }

    [Fact]
    public void Chained_partial_moves_still_fill_from_the_first_key_before_the_batch()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(2), [2, "b", U]));
        pending.Add(RowChange.Update(K(2), K(3), [3, U, U]));

        PendingBatch batch = pending.Drain();

        Assert.Equal([K(1), K(2)], batch.Deletes);
        PartialUpdate partial = Assert.Single(batch.Partials);
        Assert.Equal(K(3), partial.Key);
        Assert.Equal(K(1), partial.FillFrom);
        Assert.Equal([3, "b", U], partial.Row);
    }

    [Fact]
    public void A_delete_after_a_partial_update_leaves_only_the_delete()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(1), [1, "b", U]));
        pending.Add(RowChange.Delete(K(1)));

        PendingBatch batch = pending.Drain();

        Assert.Empty(batch.Partials);
        Assert.Equal(K(1), Assert.Single(batch.Deletes));
        Assert.Equal(1, batch.Deletes.Count + batch.Upserts.Count + batch.Partials.Count);
    }

    [Fact]
    public void A_whole_row_update_after_a_partial_one_replaces_it()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(1), [1, "b", U]));
        pending.Add(RowChange.Update(K(1), K(1), [1, "c", "new doc"]));

        PendingBatch batch = pending.Drain();

        Assert.Empty(batch.Partials);
        Assert.Equal([1, "c", "new doc"], Assert.Single(batch.Upserts).Row);
    }
}
