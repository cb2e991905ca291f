using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Core.Verify;

/// <summary>A chunk's summary on one side: its row count and an order-independent hash of its rows.</summary>
public sealed record ChunkChecksum(long Rows, string Hash);

/// <summary>Both tables as one consistent snapshot shows them, compared chunk by chunk.</summary>
public interface IChunkSnapshots : IAsyncDisposable
{
    Task<(ChunkChecksum Original, ChunkChecksum Shadow)> ChecksumAsync(KeyRange range, CancellationToken cancellationToken);
}

/// <summary>
/// The engine-neutral loop of verification: compare every chunk under one snapshot; re-copy the chunks that differ
/// and compare them again under a fresh snapshot, up to <see cref="MaxRepairs"/> times; a chunk that still differs
/// stops the migration before any swap.
/// </summary>
public static class ChunkVerification
{
    public const int MaxRepairs = 3;

    public static async Task<VerificationResult> RunAsync(string table, IReadOnlyList<KeyRange> ranges,
        Func<CancellationToken, Task<IChunkSnapshots>> openSnapshots, Func<KeyRange, CancellationToken, Task> repair, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        ArgumentNullException.ThrowIfNull(openSnapshots);
        ArgumentNullException.ThrowIfNull(repair);
        IReadOnlyList<KeyRange> pending = ranges;
        int repaired = 0;
        long rows = 0;
        for (int round = 0; ; round++)
        {
            var mismatched = new List<KeyRange>();
            await using (IChunkSnapshots snapshots = await openSnapshots(cancellationToken))
            {
                foreach (KeyRange range in pending)
                {
                    (ChunkChecksum original, ChunkChecksum shadow) = await snapshots.ChecksumAsync(range, cancellationToken);
                    if (round == 0)
                    {
                        rows += original.Rows;
                    }

                    if (original != shadow)
                    {
                        mismatched.Add(range);
                    }
                }
            }

            if (mismatched.Count == 0)
            {
                return new VerificationResult(rows, ranges.Count, repaired);
            }

            if (round == MaxRepairs)
            {
                throw new VerificationFailedException(
                    $"Verification failed: {mismatched.Count} chunk(s) of {table} still differ from the shadow after {MaxRepairs} repairs (first: keys {mismatched[0].Describe()}).",
                    "Nothing was swapped; the original is untouched. A UNIQUE key added over duplicate values, or a value the new type changes, does this: compare the rows in that key range.");
            }

            foreach (KeyRange range in mismatched)
            {
                await repair(range, cancellationToken);
            }

            repaired += mismatched.Count;
            pending = mismatched;
        }
    }

    /// <summary>The table cut into chunks of <paramref name="rows"/> rows by key, as the copy finds its chunks' ends.</summary>
    public static async Task<List<KeyRange>> RangesAsync(ICopySource source, int rows, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var ranges = new List<KeyRange>();
        RowKey? after = null;
        for (long sequence = 0; ; sequence++)
        {
            RowKey? end = await source.FindChunkEndAsync(after, rows, cancellationToken);
            ranges.Add(new KeyRange(sequence, after, end));
            if (end is null)
            {
                return ranges;
            }

            after = end;
        }
    }

    /// <summary>
    /// Ranges of <paramref name="rows"/> key values each over a dense single integer key (<see cref="KeySpan.IsDenseInteger"/>),
    /// cut by arithmetic: no walk along the key to find where each ends, which on 1,000,000 rows cost more than the
    /// hashing of one table's chunk. A range then holds between half and all of <paramref name="rows"/>. Null for any
    /// other key, and the caller walks it. The first and last ranges are open, so keys outside the span count too.
    /// </summary>
    public static List<KeyRange>? RangesByWidth(KeySpan span, int rows)
    {
        ArgumentNullException.ThrowIfNull(span);
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        if (!span.IsDenseInteger)
        {
            return null;
        }

        decimal low = KeySpan.ToDecimal(span.Min);
        long count = (long)Math.Ceiling(span.Width / rows);
        var ranges = new List<KeyRange>((int)Math.Min(count, int.MaxValue));
        RowKey? after = null;
        for (long sequence = 0; sequence < count; sequence++)
        {
            // The bound keeps the key's own type, as the copy's and the repair's comparisons expect.
            RowKey? end = sequence == count - 1 ? null : new RowKey(span.InKeyType(low + ((sequence + 1) * (decimal)rows) - 1));
            ranges.Add(new KeyRange(sequence, after, end));
            after = end;
        }

        return ranges;
    }
}
