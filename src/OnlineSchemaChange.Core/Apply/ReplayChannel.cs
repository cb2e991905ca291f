using System.Threading.Channels;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Apply;

/// <summary>The bounded channel between an engine's change feed and the <see cref="ChangeApplier"/>.</summary>
public static class ReplayChannel
{
    /// <summary>
    /// How many messages the feed may read ahead of the applier. Enough to absorb a burst while the applier writes a
    /// batch (a full batch is <see cref="ApplierOptions.MaxPendingKeys"/> keys, up to two messages each with their
    /// transactions' ends), so the next one is ready when the write returns; small enough that memory stays bounded,
    /// since each message can hold a whole row and the channel is full whenever the application changes rows faster
    /// than the applier writes them. Beyond that the feed simply waits, and the server keeps the unread changes.
    /// </summary>
    public const int Capacity = 10_000;

    /// <summary>A channel of <see cref="Capacity"/> messages, never smaller than what one batch of <paramref name="options"/> needs to fill.</summary>
    public static Channel<ReplicationMessage> Create(ApplierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        int capacity = Math.Max(Capacity, MessagesPerBatch(options));
        return Channel.CreateBounded<ReplicationMessage>(new BoundedChannelOptions(capacity) { SingleReader = true, SingleWriter = true });
    }

    /// <summary>The most messages one batch can take: each pending key's change and the end of its transaction.</summary>
    public static int MessagesPerBatch(ApplierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return 2 * options.MaxPendingKeys;
    }
}
