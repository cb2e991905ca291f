using System.Threading.Channels;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class ReplayChannelTests
{
    /// <summary>Writes single-row transactions (a change, then its end) until the channel refuses one message.</summary>
    private static int FillWithoutWaiting(ChannelWriter<ReplicationMessage> writer)
    {
        int written = 0;
        while (writer.TryWrite(written % 2 == 0 ? new RowChangeMessage(RowChange.Delete(new RowKey(written))) : new PositionMessage(new TestPosition(written))))
        {
            written++;
        }

        return written;
    }

    [Fact]
    public void Holds_its_capacity_and_no_more()
    {
        Channel<ReplicationMessage> channel = ReplayChannel.Create(new ApplierOptions());

        Assert.Equal(ReplayChannel.Capacity, FillWithoutWaiting(channel.Writer));
    }

    [Fact]
    public void Holds_at_least_a_whole_batch_of_single_row_transactions_while_the_applier_writes_one()
    {
        var defaults = new ApplierOptions();
        Assert.True(ReplayChannel.Capacity >= ReplayChannel.MessagesPerBatch(defaults),
            $"{ReplayChannel.Capacity} messages cannot fill a batch of {defaults.MaxPendingKeys} keys");

        // Larger batches than the default get a channel that can still fill one.
        var large = new ApplierOptions { MaxPendingKeys = ReplayChannel.Capacity };
        Channel<ReplicationMessage> channel = ReplayChannel.Create(large);

        Assert.Equal(2 * large.MaxPendingKeys, FillWithoutWaiting(channel.Writer));
    }
}
