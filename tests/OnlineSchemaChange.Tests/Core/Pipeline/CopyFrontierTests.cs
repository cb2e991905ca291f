using System.Threading.Channels;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class CopyFrontierTests
{
    [Fact]
    public void Before_any_range_is_taken_every_integer_key_is_ahead()
    {
        var frontier = new CopyFrontier();

        Assert.True(frontier.IsAhead(new RowKey(1)));
        Assert.True(frontier.IsAhead(new RowKey(long.MinValue)));
        Assert.True(frontier.IsAhead(new RowKey(3, 7L)));
    }

    [Fact]
    public void A_key_up_to_the_end_of_a_taken_range_is_behind_and_one_past_it_ahead()
    {
        var frontier = new CopyFrontier();
        frontier.Reach(new KeyRange(0, null, new RowKey(10)));

        Assert.False(frontier.IsAhead(new RowKey(-5)));
        Assert.False(frontier.IsAhead(new RowKey(10L)));
        Assert.True(frontier.IsAhead(new RowKey(11L)));

        // Ranges may be taken out of order by parallel workers: the frontier never goes back.
        frontier.Reach(new KeyRange(2, new RowKey(20), new RowKey(30)));
        frontier.Reach(new KeyRange(1, new RowKey(10), new RowKey(20)));
        Assert.False(frontier.IsAhead(new RowKey(30)));
        Assert.True(frontier.IsAhead(new RowKey(31UL)));
    }

    [Fact]
    public void Composite_keys_compare_column_by_column()
    {
        var frontier = new CopyFrontier();
        frontier.Reach(new KeyRange(0, null, new RowKey(5, 100)));

        Assert.False(frontier.IsAhead(new RowKey(4, 1000)));
        Assert.False(frontier.IsAhead(new RowKey(5, 100)));
        Assert.True(frontier.IsAhead(new RowKey(5, 101)));
        Assert.True(frontier.IsAhead(new RowKey(6, 0)));
    }

    [Fact]
    public void Once_the_last_range_is_taken_nothing_is_ahead()
    {
        var frontier = new CopyFrontier();
        frontier.Reach(new KeyRange(0, new RowKey(10), null));

        Assert.False(frontier.IsAhead(new RowKey(int.MaxValue)));
    }

    [Fact]
    public void Keys_whose_order_the_server_decides_are_never_ahead()
    {
        // Text sorts by the column's collation and dates by their own rules: only the server knows.
        var frontier = new CopyFrontier();

        Assert.False(frontier.IsAhead(new RowKey("zzz")));
        Assert.False(frontier.IsAhead(new RowKey(1, "a")));
        Assert.False(frontier.IsAhead(new RowKey(new byte[] { 1 })));
        Assert.False(frontier.IsAhead(new RowKey(new DateTime(2030, 1, 1, 0, 0, 0, DateTimeKind.Utc))));
        Assert.True(frontier.IsAhead(new RowKey(1.5m)));
    }

    /// <summary>
    /// A table of 300 rows is copied in ranges of 20 while a random load changes it; between chunks the applier, with
    /// the frontier, catches up. A chunk must never meet a key the applier wrote (that is what lets it insert plainly),
    /// and the shadow must end equal to the source.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Leaving_changes_ahead_to_the_copy_converges_and_the_copy_meets_no_written_key(int seed)
    {
        var random = new Random(seed);
        var source = Enumerable.Range(1, 300).ToDictionary(k => k, k => $"v{k}");
        var shadow = new ShadowWriter();
        var fence = new CopyFence();
        var frontier = new CopyFrontier(fence);
        var applier = new ChangeApplier(shadow, new ApplierOptions { MaxPendingKeys = 7 }, TimeProvider.System, fence, frontier);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        Task applying = applier.RunAsync(channel.Reader, CancellationToken.None);
        long position = 0;
        int nextKey = 1000;

        async Task LoadAsync(int transactions, bool wait = true)
        {
            for (int t = 0; t < transactions; t++)
            {
                int id = random.Next(1, 420);
                string value = $"t{position}";
                switch (random.Next(4))
                {
                    case 0:
                        // Inserts land anywhere, behind the copy or ahead of it, and past the end.
                        int insert = random.Next(2) == 0 ? nextKey++ : random.Next(1, 420);
                        if (source.TryAdd(insert, value))
                        {
                            await channel.Writer.WriteAsync(new RowChangeMessage(RowChange.Insert(new RowKey(insert), [insert, value])));
                        }

                        break;
                    case 1 when source.ContainsKey(id):
                        source[id] = value;
                        await channel.Writer.WriteAsync(new RowChangeMessage(RowChange.Update(new RowKey(id), new RowKey(id), [id, value])));
                        break;
                    case 2 when source.ContainsKey(id):
                        // A key move, across the frontier in either direction as often as not.
                        int to = random.Next(1, 420);
                        if (!source.ContainsKey(to))
                        {
                            source.Remove(id);
                            source[to] = value;
                            await channel.Writer.WriteAsync(new RowChangeMessage(RowChange.Update(new RowKey(id), new RowKey(to), [to, value])));
                        }

                        break;
                    case 3 when source.Remove(id):
                        await channel.Writer.WriteAsync(new RowChangeMessage(RowChange.Delete(new RowKey(id))));
                        break;
                }

                await channel.Writer.WriteAsync(new PositionMessage(new TestPosition(++position)));
            }

            if (wait)
            {
                await applier.WaitForAsync(new TestPosition(position), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
            }
        }

        int? after = null;
        for (long sequence = 0; ; sequence++)
        {
            await LoadAsync(15);
            int? end = source.Keys.Where(k => after is null || k > after).Order().Skip(19).Cast<int?>().FirstOrDefault();
            var range = new KeyRange(sequence, after is null ? null : new RowKey(after.Value), end is null ? null : new RowKey(end.Value));
            using (frontier.Enter(range))
            {
                // Changes to the range now are replayed, but only once the chunk has landed.
                await LoadAsync(3, wait: false);
                await Task.Delay(random.Next(3));

                // The chunk reads the source now, which holds every change the applier has received.
                foreach (var (key, value) in source.Where(p => (after is null || p.Key > after) && (end is null || p.Key <= end)).ToList())
                {
                    Assert.False(shadow.Rows.ContainsKey(key), $"the copy met key {key}, written by the applier");
                    shadow.Rows[key] = value;
                }
            }

            if (end is null)
            {
                break;
            }

            after = end;
        }

        await LoadAsync(30);
        channel.Writer.Complete();
        await applying;

        Assert.Equal(source.OrderBy(p => p.Key), shadow.Rows.OrderBy(p => p.Key));
        Assert.True(applier.ChangesLeftToCopy > 0, "some changes were ahead of the copy");
    }

    [Fact]
    public async Task A_key_moved_from_behind_the_copy_to_ahead_of_it_leaves_the_shadow()
    {
        var shadow = new ShadowWriter();
        shadow.Rows[5] = "old";
        var frontier = new CopyFrontier();
        frontier.Reach(new KeyRange(0, null, new RowKey(10)));
        var applier = new ChangeApplier(shadow, new ApplierOptions(), TimeProvider.System, frontier: frontier);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();

        await channel.Writer.WriteAsync(new RowChangeMessage(RowChange.Update(new RowKey(5), new RowKey(50), [50, "moved"])));
        channel.Writer.Complete();
        await applier.RunAsync(channel.Reader, CancellationToken.None);

        Assert.Empty(shadow.Rows);
    }

    /// <summary>A shadow table of int keys and one text column.</summary>
    private sealed class ShadowWriter : IChangeWriter
    {
        public Dictionary<int, string> Rows { get; } = [];

        public Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken)
        {
            foreach (RowKey key in batch.Deletes)
            {
                Rows.Remove((int)key.Values[0]!);
            }

            foreach (var (key, row) in batch.Upserts)
            {
                Rows[(int)key.Values[0]!] = (string)row[1]!;
            }

            return Task.CompletedTask;
        }
    }
}
