using System.Threading.Channels;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Core.Apply;

/// <summary>
/// Reads the table's changes from a channel, de-duplicates them by key and writes them in batches. It flushes when
/// the channel runs dry (so an idle stream is applied at once), when too many keys are pending, or when the oldest
/// pending change has waited too long. After each flush it publishes the position of the last transaction whose
/// changes are all written: checkpoints resume from there, and the cut-over waits for it. With a
/// <see cref="CopyFence"/>, a batch waits for the copies in progress when it closed (see there why). With a
/// <see cref="CopyFrontier"/>, a change to a key the copy has not reached yet is left to the copy.
/// </summary>
public sealed class ChangeApplier(IChangeWriter writer, ApplierOptions options, TimeProvider time, CopyFence? fence = null, CopyFrontier? frontier = null)
{
    private readonly PendingChanges _pending = new();
    private readonly object _waitersLock = new();
    private readonly List<(ReplicationPosition Target, TaskCompletionSource Done)> _waiters = [];
    private ReplicationPosition? _seen;
    private long _pendingSince;
    private ChannelReader<ReplicationMessage>? _reader;
    private int _pendingKeys;

    public ChangeApplier(IChangeWriter writer) : this(writer, new ApplierOptions(), TimeProvider.System)
    {
    }

    /// <summary>The last position whose transaction, and everything before it, is written to the shadow table.</summary>
    public ReplicationPosition? Applied { get; private set; }

    public long ChangesReceived { get; private set; }

    public long RowsWritten { get; private set; }

    /// <summary>Changes not replayed because the copy had not reached their key yet (it reads their effect later).</summary>
    public long ChangesLeftToCopy { get; private set; }

    /// <summary>
    /// What waits to be written to the shadow, for progress: the messages read from the stream not yet taken from the
    /// channel (changes and transaction ends) and the keys pending in the batch being built.
    /// </summary>
    public long Backlog => (_reader is { CanCount: true } reader ? reader.Count : 0) + Volatile.Read(ref _pendingKeys);

    public async Task RunAsync(ChannelReader<ReplicationMessage> reader, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reader);
        _reader = reader;
        try
        {
            while (await reader.WaitToReadAsync(cancellationToken))
            {
                while (reader.TryRead(out ReplicationMessage? message))
                {
                    Accept(message);
                    Volatile.Write(ref _pendingKeys, _pending.Count);
                    if (_pending.Count >= options.MaxPendingKeys || (_pending.Count > 0 && time.GetElapsedTime(_pendingSince) >= options.MaxDelay))
                    {
                        await FlushAsync(cancellationToken);
                    }
                }

                // The channel is dry: write what we have, so an idle stream is applied without waiting for a timer.
                await FlushAsync(cancellationToken);
            }
        }
        catch (Exception e)
        {
            FailWaiters(e);
            throw;
        }

        FailWaiters(new InvalidOperationException("The change stream ended before the awaited position was applied."));
    }

    /// <summary>Completes once everything up to <paramref name="target"/> is written to the shadow table.</summary>
    public Task WaitForAsync(ReplicationPosition target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        lock (_waitersLock)
        {
            if (Applied is not null && Applied >= target)
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((target, done));
            return done.Task.WaitAsync(cancellationToken);
        }
    }

    private void Accept(ReplicationMessage message)
    {
        switch (message)
        {
            case RowChangeMessage change:
                ChangesReceived++;
                RowChange? kept = frontier is null ? change.Change : BehindCopy(change.Change);
                if (kept is null)
                {
                    ChangesLeftToCopy++;
                    break;
                }

                if (_pending.Count == 0)
                {
                    _pendingSince = time.GetTimestamp();
                }

                _pending.Add(kept);
                break;
            case PositionMessage position:
                _seen = position.Position;
                if (_pending.Count == 0)
                {
                    Publish();
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(message), message, "unknown replication message");
        }
    }

    /// <summary>
    /// The part of a change the replay must write. The frontier is read after the change was received, so a chunk that
    /// takes its key's range later reads the change's effect. A key that moved from behind the frontier to ahead of it
    /// still has to leave the shadow. A change that is written, even in part, to a key ahead would make a later one
    /// that is skipped lose against the copy's "already there": so ahead means not at all.
    /// </summary>
    private RowChange? BehindCopy(RowChange change)
    {
        if (!frontier!.IsAhead(change.Key))
        {
            return change;
        }

        return change.MovesKey && !frontier.IsAhead(change.PreviousKey!) ? RowChange.Delete(change.PreviousKey!) : null;
    }

    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_pending.Count > 0)
        {
            PendingBatch batch = _pending.Drain();
            if (fence is not null)
            {
                // A copy that read before these changes committed must land first, or it could overwrite them.
                await fence.WaitForCopiesInsideAsync(cancellationToken);
            }

            await writer.WriteAsync(batch, cancellationToken);
            RowsWritten += batch.Rows;
            Volatile.Write(ref _pendingKeys, 0);
        }

        // Every change read so far is written; the last transaction end read is therefore complete.
        Publish();
    }

    private void Publish()
    {
        if (_seen is null || (Applied is not null && _seen <= Applied))
        {
            return;
        }

        lock (_waitersLock)
        {
            Applied = _seen;
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (Applied >= _waiters[i].Target)
                {
                    _waiters[i].Done.TrySetResult();
                    _waiters.RemoveAt(i);
                }
            }
        }
    }

    private void FailWaiters(Exception error)
    {
        lock (_waitersLock)
        {
            foreach (var (_, done) in _waiters)
            {
                done.TrySetException(error);
            }

            _waiters.Clear();
        }
    }
}
