using System.Diagnostics;
using System.Threading.Channels;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// Copies the table in keyset-ordered chunks: one producer walks the primary key to cut ranges of the size the
/// <see cref="ChunkSizer"/> asks for, several workers copy ranges in parallel, each waiting on the throttler first.
/// Ranges finish out of order; the watermark is the end of the longest finished prefix, which is what a checkpoint
/// can safely resume after; the ranges finished beyond it are kept too (<see cref="Progress"/>), so a resumed run
/// skips them instead of copying them again. With a <see cref="CopyFrontier"/>, each worker moves it to the end of its
/// range once it may start, before the chunk reads (see there why that order).
/// </summary>
public sealed class KeysetCopier(ICopySource source, ChunkSizer sizer, Throttler? throttler, int workers, CopyFrontier? frontier = null)
{
    private static readonly TimeSpan ParkedWorkerPoll = TimeSpan.FromMilliseconds(100);
    private readonly object _lock = new();
    private readonly SortedDictionary<long, KeyRange> _finishedOutOfOrder = [];
    private readonly List<CopiedRange> _toSkip = [];
    private long _nextToCommit;
    private long _rowsCopied;
    private bool _started;

    /// <summary>
    /// How many of the workers may copy now (an operator's `workers=N`, which can rise above the count it started with
    /// up to the tasks this copier runs); the others wait before taking a range. Null: all of them.
    /// </summary>
    public Func<int>? ActiveWorkers { get; init; }

    /// <summary>Every key up to and including this one is copied (null: nothing yet).</summary>
    public RowKey? Watermark { get; private set; }

    public long RowsCopied => Interlocked.Read(ref _rowsCopied);

    public long ChunksCopied { get; private set; }

    /// <summary>Ranges a resumed run skipped because the interrupted run had copied them.</summary>
    public long RangesSkipped { get; private set; }

    /// <summary>True once the last, open-ended range is copied.</summary>
    public bool Finished { get; private set; }

    public Task RunAsync(RowKey? resumeAfter, CancellationToken cancellationToken) => RunAsync(resumeAfter, [], cancellationToken);

    /// <summary>Copies every key after <paramref name="resumeAfter"/> except those in <paramref name="copiedAhead"/>.</summary>
    /// <param name="resumeAfter">The watermark of the checkpoint resumed from (null: from the start).</param>
    /// <param name="copiedAhead">
    /// The ranges that checkpoint records as copied beyond its watermark. They are skipped only when every bound is a
    /// key of integers or decimals, where the server's order and ours agree (see <see cref="RowKey.IsOrderedExactly"/>),
    /// and they lie beyond the watermark in order without overlapping (they may touch); otherwise they are copied
    /// again, which is harmless (a resumed copy leaves rows already in the shadow alone), only slower.
    /// </param>
    public async Task RunAsync(RowKey? resumeAfter, IReadOnlyList<CopiedRange> copiedAhead, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentNullException.ThrowIfNull(copiedAhead);
        lock (_lock)
        {
            Watermark = resumeAfter;
            _toSkip.AddRange(UsableSkips(resumeAfter, copiedAhead));
            _started = true;
        }

        // Ranges are cut one per worker copying at the start, not per task: parked tasks would otherwise have the
        // producer cut ranges far ahead, sized before the chunk sizer had learnt anything.
        int capacity = Math.Clamp(ActiveWorkers?.Invoke() ?? workers, 1, workers);
        var ranges = Channel.CreateBounded<KeyRange>(new BoundedChannelOptions(capacity) { SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // The first failure cancels everyone else at once: a producer blocked on a full channel, or workers waiting
        // on the throttler, must not keep the copy alive after a chunk failed. Its chunks are copied again on resume.
        async Task Guard(Func<CancellationToken, Task> work)
        {
            try
            {
                await work(stop.Token);
            }
            catch
            {
                await stop.CancelAsync();
                throw;
            }
        }

        Task[] tasks = Enumerable.Range(0, workers).Select(index => Guard(token => CopyAsync(index, ranges.Reader, token)))
            .Append(Guard(token => ProduceAsync(ranges.Writer, resumeAfter, token))).ToArray();
        try
        {
            await Task.WhenAll(tasks);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // A sibling's cancellation surfaced first; report the failure that caused it.
            Exception cause = tasks.Where(t => t.IsFaulted).SelectMany(t => t.Exception!.InnerExceptions)
                .First(e => e is not OperationCanceledException);
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(cause).Throw();
        }
    }

    private async Task ProduceAsync(ChannelWriter<KeyRange> writer, RowKey? after, CancellationToken cancellationToken)
    {
        try
        {
            for (long sequence = 0; ; sequence++)
            {
                CopiedRange? skip = NextSkip();
                if (skip is not null && after is not null && RowKeyComparer.Instance.Compare(after, skip.LowerExclusive) == 0)
                {
                    // Copied by the interrupted run: finished as it stands, in sequence, so the watermark passes it.
                    var skipped = new KeyRange(sequence, after, skip.UpperInclusive);
                    lock (_lock)
                    {
                        _toSkip.RemoveAt(0);
                        RangesSkipped++;
                        Finish(skipped);
                    }

                    if (skipped.IsLast)
                    {
                        break;
                    }

                    after = skipped.UpperInclusive;
                    continue;
                }

                RowKey? end = await source.FindChunkEndAsync(after, sizer.NextRows, cancellationToken);
                if (skip is not null && (end is null || RowKeyComparer.Instance.Compare(end, skip.LowerExclusive) > 0))
                {
                    // Stop where the copied range begins; the next round skips it.
                    end = skip.LowerExclusive;
                }

                await writer.WriteAsync(new KeyRange(sequence, after, end), cancellationToken);
                if (end is null)
                {
                    break;
                }

                after = end;
            }

            writer.Complete();
        }
        catch (Exception e)
        {
            writer.Complete(e);
            throw;
        }
    }

    private async Task CopyAsync(int index, ChannelReader<KeyRange> reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            // A worker beyond the operator's count waits here, holding no range, so the others take them all.
            while (ActiveWorkers is not null && index >= Math.Max(1, ActiveWorkers()))
            {
                if (reader.Completion.IsCompleted)
                {
                    return; // Every range is handed out: nothing left to wait for.
                }

                await Task.Delay(ParkedWorkerPoll, cancellationToken);
            }

            if (!await reader.WaitToReadAsync(cancellationToken))
            {
                return;
            }

            if (!reader.TryRead(out KeyRange? range))
            {
                continue;
            }

            if (throttler is not null)
            {
                await throttler.WaitUntilOpenAsync(cancellationToken);
            }

            long started = Stopwatch.GetTimestamp();
            long rows;
            using (frontier?.Enter(range))
            {
                rows = await source.CopyRangeAsync(range, cancellationToken);
            }

            lock (_lock)
            {
                // Counted with the range it belongs to, so a sampled progress never has the rows without the range.
                Interlocked.Add(ref _rowsCopied, rows);
                sizer.Record((int)Math.Min(rows, int.MaxValue), Stopwatch.GetElapsedTime(started));
                ChunksCopied++;
                Finish(range);
            }
        }
    }

    /// <summary>
    /// The watermark and the ranges finished beyond it (including those still to be skipped), sampled together; null
    /// before <see cref="RunAsync(RowKey?, IReadOnlyList{CopiedRange}, CancellationToken)"/> started.
    /// </summary>
    public CopyProgress? Progress()
    {
        lock (_lock)
        {
            if (!_started)
            {
                return null;
            }

            var ahead = new List<CopiedRange>();
            long previous = -2;
            foreach (KeyRange range in _finishedOutOfOrder.Values)
            {
                if (range.Sequence == previous + 1)
                {
                    ahead[^1] = ahead[^1] with { UpperInclusive = range.UpperInclusive };
                }
                else
                {
                    // Out of order means a range before it is still running, so its lower bound is a key.
                    ahead.Add(new CopiedRange(range.LowerExclusive!, range.UpperInclusive));
                }

                previous = range.Sequence;
            }

            // Still to be skipped: all beyond every range handed out so far, so beyond those above.
            ahead.AddRange(_toSkip);
            return new CopyProgress(Watermark, ahead, Finished, RowsCopied);
        }
    }

    private CopiedRange? NextSkip()
    {
        lock (_lock)
        {
            return _toSkip.Count == 0 ? null : _toSkip[0];
        }
    }

    private static IReadOnlyList<CopiedRange> UsableSkips(RowKey? resumeAfter, IReadOnlyList<CopiedRange> copiedAhead)
    {
        if (copiedAhead.Count == 0 || resumeAfter?.IsOrderedExactly == false)
        {
            return [];
        }

        // No watermark: the first chunk had not finished, and every range beyond it has a lower bound.
        RowKey? bound = resumeAfter;
        for (int i = 0; i < copiedAhead.Count; i++)
        {
            CopiedRange range = copiedAhead[i];
            bool last = i == copiedAhead.Count - 1;
            bool ordered = range.LowerExclusive.IsOrderedExactly
                && (bound is null || RowKeyComparer.Instance.Compare(range.LowerExclusive, bound) >= 0)
                && (range.UpperInclusive is null
                    ? last
                    : range.UpperInclusive.IsOrderedExactly && RowKeyComparer.Instance.Compare(range.UpperInclusive, range.LowerExclusive) > 0);
            if (!ordered)
            {
                return [];
            }

            bound = range.UpperInclusive ?? bound;
        }

        return copiedAhead;
    }

    private void Finish(KeyRange range)
    {
        _finishedOutOfOrder[range.Sequence] = range;
        while (_finishedOutOfOrder.Remove(_nextToCommit, out KeyRange? next))
        {
            _nextToCommit++;
            if (next.IsLast)
            {
                Finished = true;
            }
            else
            {
                Watermark = next.UpperInclusive;
            }
        }
    }
}
