using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class PendingChangesTests
{
    private static RowKey K(int id) => new(id);

    private static object?[] Row(int id, string value) => [id, value];

    [Fact]
    public void The_last_change_of_a_key_wins()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Insert(K(1), Row(1, "a")));
        pending.Add(RowChange.Update(K(1), K(1), Row(1, "b")));
        pending.Add(RowChange.Update(K(1), K(1), Row(1, "c")));

        PendingBatch batch = pending.Drain();

        Assert.Empty(batch.Deletes);
        Assert.Equal("c", Assert.Single(batch.Upserts).Row[1]);
        Assert.Equal(3, batch.ChangesReceived);
    }

    [Fact]
    public void An_insert_then_delete_leaves_only_the_delete()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Insert(K(1), Row(1, "a")));
        pending.Add(RowChange.Delete(K(1)));

        PendingBatch batch = pending.Drain();

        Assert.Equal(K(1), Assert.Single(batch.Deletes));
        Assert.Empty(batch.Upserts);
    }

    [Fact]
    public void A_delete_then_reinsert_is_an_upsert()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Delete(K(1)));
        pending.Add(RowChange.Insert(K(1), Row(1, "again")));

        PendingBatch batch = pending.Drain();

        Assert.Empty(batch.Deletes);
        Assert.Equal("again", Assert.Single(batch.Upserts).Row[1]);
    }

    [Fact]
    public void A_primary_key_change_deletes_the_old_key_and_upserts_the_new()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(2), Row(2, "moved")));

        PendingBatch batch = pending.Drain();

        Assert.Equal(K(1), Assert.Single(batch.Deletes));
        Assert.Equal(2, Assert.Single(batch.Upserts).Row[0]);
    }

    [Fact]
    public void A_key_moved_away_and_back_ends_as_one_upsert()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(K(1), K(2), Row(2, "x")));
        pending.Add(RowChange.Update(K(2), K(1), Row(1, "y")));

        PendingBatch batch = pending.Drain();

        Assert.Equal(K(2), Assert.Single(batch.Deletes));
        Assert.Equal(Row(1, "y"), Assert.Single(batch.Upserts).Row);
        Assert.Equal(K(1), Assert.Single(batch.Upserts).Key);
    }

    [Fact]
    public void Upserts_keep_the_order_in_which_keys_last_changed()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Insert(K(1), Row(1, "a")));
        pending.Add(RowChange.Insert(K(2), Row(2, "b")));
        pending.Add(RowChange.Update(K(1), K(1), Row(1, "a2")));

        Assert.Equal([2, 1], pending.Drain().Upserts.Select(u => (int)u.Row[0]!));
    }

    [Fact]
    public void Draining_empties_the_buffer()
    {
        var pending = new PendingChanges();
        pending.Add(RowChange.Insert(K(1), Row(1, "a")));
        pending.Drain();

        Assert.Equal(0, pending.Count);
        Assert.True(pending.Drain().IsEmpty);
    }

    [Fact]
    public void Binary_keys_compare_by_content()
    {
        Assert.Equal(new RowKey(new byte[] { 1, 2 }, "x"), new RowKey(new byte[] { 1, 2 }, "x"));
        Assert.NotEqual(new RowKey(new byte[] { 1, 2 }), new RowKey(new byte[] { 2, 1 }));
        Assert.NotEqual(new RowKey(1, 2), new RowKey(2, 1));
    }
}
