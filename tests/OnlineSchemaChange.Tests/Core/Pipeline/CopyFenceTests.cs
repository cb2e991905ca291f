using System.Threading.Channels;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class CopyFenceTests
{
    private sealed class RecordingWriter : IChangeWriter
    {
        public List<PendingBatch> Batches { get; } = [];

        public Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken)
        {
            Batches.Add(batch);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task Waits_only_for_copies_inside_at_the_time_of_the_call()
    {
        var fence = new CopyFence();
        IDisposable first = fence.Enter();
        Task waiting = fence.WaitForCopiesInsideAsync(CancellationToken.None);
        IDisposable later = fence.Enter();

        Assert.False(waiting.IsCompleted);
        first.Dispose();
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1, fence.Inside);
        later.Dispose();
        first.Dispose();
        Assert.Equal(0, fence.Inside);
        Assert.True(fence.WaitForCopiesInsideAsync(CancellationToken.None).IsCompleted);
    }

    [Fact]
    public async Task The_applier_holds_a_batch_until_the_copy_in_progress_has_landed()
    {
        var fence = new CopyFence();
        var writer = new RecordingWriter();
        var applier = new ChangeApplier(writer, new ApplierOptions(), TimeProvider.System, fence);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        Task running = applier.RunAsync(channel.Reader, CancellationToken.None);

        IDisposable copy = fence.Enter();
        await channel.Writer.WriteAsync(new RowChangeMessage(RowChange.Delete(new RowKey(7))));
        await channel.Writer.WriteAsync(new PositionMessage(new TestPosition(1)));
        Task applied = applier.WaitForAsync(new TestPosition(1), CancellationToken.None);
        await Task.Delay(200);

        Assert.Empty(writer.Batches);
        Assert.False(applied.IsCompleted);
        copy.Dispose();
        await applied.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(new RowKey(7), Assert.Single(Assert.Single(writer.Batches).Deletes));

        channel.Writer.Complete();
        await running;
    }
}
