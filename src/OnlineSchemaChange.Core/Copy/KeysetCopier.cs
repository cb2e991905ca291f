using System.Diagnostics;
using System.Threading.Channels;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// Copies the table in keyset-ordered chunks: one producer walks the primary key to cut ranges of the size the
/// <see cref="ChunkSizer"/> asks for, several workers copy ranges in parallel, each waiting on the throttler first.
/// Ranges finish out of order; the watermark is the end of the longest finished prefix, which is what a checkpoint
/// can safely resume after.
/// </summary>
public sealed class KeysetCopier(ICopySource source, ChunkSizer sizer, Throttler? throttler, int workers)
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
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task producer = ProduceAsync(ranges.Writer, resumeAfter, failed.Token);
        Task[] copiers = Enumerable.Range(0, workers).Select(_ => CopyAsync(ranges.Reader, failed.Token)).ToArray();
        try
        {
            await Task.WhenAll(copiers.Append(producer));
        }
        catch
        {
            // One failure stops the others: their chunks are simply copied again after a resume.
            await failed.CancelAsync();
            await Task.WhenAll(copiers.Append(producer)).ContinueWith(_ => { }, TaskScheduler.Default);
            throw;
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
            long rows = await source.CopyRangeAsync(range, cancellationToken);
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
