using System.Threading.Channels;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class ChangeApplierTests
{
    /// <summary>Keeps what a real shadow table would hold after each batch, and can be made to wait.</summary>
    private sealed class TableWriter : IChangeWriter
    {
        public Dictionary<RowKey, IReadOnlyList<object?>> Rows { get; } = [];

        public List<PendingBatch> Batches { get; } = [];

        public TaskCompletionSource? Gate { get; set; }

        public async Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken)
        {
            if (Gate is not null)
            {
                await Gate.Task.WaitAsync(cancellationToken);
            }

            Batches.Add(batch);
            foreach (RowKey key in batch.Deletes)
            {
                Rows.Remove(key);
            }

            foreach (var (key, row) in batch.Upserts)
            {
                Rows[key] = row;
            }
        }
    }

    private static RowChangeMessage Insert(int id, string v) => new(RowChange.Insert(new RowKey(id), [id, v]));

    private static RowChangeMessage Update(int from, int to, string v) => new(RowChange.Update(new RowKey(from), new RowKey(to), [to, v]));

    private static RowChangeMessage Delete(int id) => new(RowChange.Delete(new RowKey(id)));

    private static PositionMessage End(long position) => new(new TestPosition(position));

    [Fact]
    public async Task Its_backlog_counts_what_waits_in_the_channel_and_in_the_batch_until_it_is_written()
    {
        var writer = new TableWriter { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var applier = new ChangeApplier(writer, new ApplierOptions { MaxPendingKeys = 2 }, TimeProvider.System);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        Assert.Equal(0, applier.Backlog);
        foreach (ReplicationMessage message in new ReplicationMessage[] { Insert(1, "a"), Insert(2, "b"), End(1), Insert(3, "c"), Insert(4, "d"), End(2) })
        {
            await channel.Writer.WriteAsync(message);
        }

        Task applying = applier.RunAsync(channel.Reader, CancellationToken.None);
        // The first batch (keys 1 and 2) is held at the writer: the other four messages wait in the channel.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (applier.ChangesReceived < 2 || channel.Reader.Count != 4)
        {
            Assert.True(DateTime.UtcNow < deadline, "the first batch never reached the writer");
            await Task.Delay(5);
        }

        Assert.Equal(4 + 2, applier.Backlog);
        writer.Gate.SetResult();
        await applier.WaitForAsync(new TestPosition(2), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, applier.Backlog);
        channel.Writer.Complete();
        await applying;
    }

    [Fact]
    public async Task Replays_a_stream_into_the_final_state_of_the_source()
    {
        var writer = new TableWriter();
        var applier = new ChangeApplier(writer, new ApplierOptions { MaxPendingKeys = 3 }, TimeProvider.System);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        var source = new Dictionary<int, string>();
        var random = new Random(42);
        for (int tx = 1; tx <= 500; tx++)
        {
            for (int n = random.Next(1, 5); n > 0; n--)
            {
                int id = random.Next(1, 30);
                switch (random.Next(3))
                {
                    case 0 when !source.ContainsKey(id):
                        source[id] = $"i{tx}";
                        await channel.Writer.WriteAsync(Insert(id, source[id]));
                        break;
                    case 1 when source.ContainsKey(id):
                        int to = random.Next(2) == 0 ? id : random.Next(100, 130);
                        if (to != id && source.ContainsKey(to))
                        {
                            break;
                        }

                        source.Remove(id);
                        source[to] = $"u{tx}";
                        await channel.Writer.WriteAsync(Update(id, to, source[to]));
                        break;
                    case 2 when source.ContainsKey(id):
                        source.Remove(id);
                        await channel.Writer.WriteAsync(Delete(id));
                        break;
                }
            }

            await channel.Writer.WriteAsync(End(tx));
        }

        channel.Writer.Complete();
        await applier.RunAsync(channel.Reader, CancellationToken.None);

        Assert.Equal(source.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value}"),
            writer.Rows.OrderBy(p => (int)p.Key.Values[0]!).Select(p => $"{p.Key.Values[0]}={p.Value[1]}"));
        Assert.Equal(new TestPosition(500), applier.Applied);
        Assert.True(writer.Batches.Count > 1, "a stream larger than the batch limit is flushed more than once");
    }

    [Fact]
    public async Task Publishes_a_position_only_once_its_transaction_is_written()
    {
        var writer = new TableWriter { Gate = new TaskCompletionSource() };
        var applier = new ChangeApplier(writer, new ApplierOptions(), TimeProvider.System);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        Task run = applier.RunAsync(channel.Reader, CancellationToken.None);

        await channel.Writer.WriteAsync(Insert(1, "a"));
        await channel.Writer.WriteAsync(End(10));
        Task caughtUp = applier.WaitForAsync(new TestPosition(10), CancellationToken.None);
        await Task.Delay(100);

        Assert.False(caughtUp.IsCompleted);
        Assert.Null(applier.Applied);

        writer.Gate.SetResult();
        await caughtUp.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new TestPosition(10), applier.Applied);
        channel.Writer.Complete();
        await run;
    }

    [Fact]
    public async Task A_half_received_transaction_does_not_advance_the_position()
    {
        var writer = new TableWriter();
        var applier = new ChangeApplier(writer, new ApplierOptions { MaxPendingKeys = 1 }, TimeProvider.System);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        await channel.Writer.WriteAsync(Insert(1, "a"));
        await channel.Writer.WriteAsync(End(1));
        await channel.Writer.WriteAsync(Insert(2, "b"));
        await channel.Writer.WriteAsync(Insert(3, "c"));
        channel.Writer.Complete();

        await applier.RunAsync(channel.Reader, CancellationToken.None);

        Assert.Equal(3, writer.Rows.Count);
        Assert.Equal(new TestPosition(1), applier.Applied);
    }

    [Fact]
    public async Task A_writer_failure_fails_the_run_and_every_waiter()
    {
        var applier = new ChangeApplier(new FailingWriter(), new ApplierOptions(), TimeProvider.System);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        Task waiter = applier.WaitForAsync(new TestPosition(1), CancellationToken.None);
        await channel.Writer.WriteAsync(Insert(1, "a"));
        await channel.Writer.WriteAsync(End(1));

        await Assert.ThrowsAsync<InvalidOperationException>(() => applier.RunAsync(channel.Reader, CancellationToken.None));
        await Assert.ThrowsAsync<InvalidOperationException>(() => waiter);
    }

    private sealed class FailingWriter : IChangeWriter
    {
        public Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken) => throw new InvalidOperationException("shadow table gone");
    }
}
