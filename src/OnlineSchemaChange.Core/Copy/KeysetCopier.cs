using System.Diagnostics;
using System.Threading.Channels;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// Copies the table in keyset-ordered chunks: one producer walks the primary key to cut ranges of the size the
/// <see cref="ChunkSizer"/> asks for, several workers copy ranges in parallel, each waiting on the throttler first.
/// Ranges finish out of order; the watermark is the end of the longest finished prefix, which is what a checkpoint
/// can safely resume after. With a <see cref="CopyFrontier"/>, each worker moves it to the end of its range once it
/// may start, before the chunk reads (see there why that order).
/// </summary>
public sealed class KeysetCopier(ICopySource source, ChunkSizer sizer, Throttler? throttler, int workers, CopyFrontier? frontier = null)
{
    private readonly object _lock = new();
    private readonly SortedDictionary<long, KeyRange> _finishedOutOfOrder = [];
    private long _nextToCommit;
    private long _rowsCopied;

    /// <summary>Every key up to and including this one is copied (null: nothing yet).</summary>
    public RowKey? Watermark { get; private set; }

    public long RowsCopied => Interlocked.Read(ref _rowsCopied);

    public long ChunksCopied { get; private set; }

    /// <summary>True once the last, open-ended range is copied.</summary>
    public bool Finished { get; private set; }

    public async Task RunAsync(RowKey? resumeAfter, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        Watermark = resumeAfter;
        var ranges = Channel.CreateBounded<KeyRange>(new BoundedChannelOptions(workers) { SingleWriter = true });
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

        Task[] tasks = Enumerable.Range(0, workers).Select(_ => Guard(token => CopyAsync(ranges.Reader, token)))
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
                RowKey? end = await source.FindChunkEndAsync(after, sizer.NextRows, cancellationToken);
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

    private async Task CopyAsync(ChannelReader<KeyRange> reader, CancellationToken cancellationToken)
    {
        await foreach (KeyRange range in reader.ReadAllAsync(cancellationToken))
        {
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

            Interlocked.Add(ref _rowsCopied, rows);
            lock (_lock)
            {
                sizer.Record((int)Math.Min(rows, int.MaxValue), Stopwatch.GetElapsedTime(started));
                Finish(range);
            }
        }
    }

    private void Finish(KeyRange range)
    {
        ChunksCopied++;
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
