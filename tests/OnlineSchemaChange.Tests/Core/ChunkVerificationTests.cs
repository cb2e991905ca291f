using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Verify;

namespace OnlineSchemaChange.Tests.Core;

/// <summary>The engine-neutral verification loop: every chunk compared, repairs under fresh snapshots, refusal.</summary>
public sealed class ChunkVerificationTests
{
    /// <summary>Chunks of 100 rows; a chunk differs while its key is in <see cref="Differing"/>.</summary>
    private sealed class Tables : IChunkSnapshots
    {
        public HashSet<long> Differing { get; } = [];

        public List<long> Compared { get; } = [];

        /// <summary>How many times verification opened its snapshots.</summary>
        public int Opened { get; private set; }

        public Task<IChunkSnapshots> OpenAsync(CancellationToken cancellationToken)
        {
            Opened++;
            return Task.FromResult<IChunkSnapshots>(this);
        }

        public Task<(ChunkChecksum Original, ChunkChecksum Shadow)> ChecksumAsync(KeyRange range, CancellationToken cancellationToken)
        {
            Compared.Add(range.Sequence);
            return Task.FromResult((new ChunkChecksum(100, "a"), new ChunkChecksum(100, Differing.Contains(range.Sequence) ? "b" : "a")));
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private static List<KeyRange> Ranges(int count) =>
        Enumerable.Range(0, count).Select(i => new KeyRange(i, i == 0 ? null : new RowKey(i * 100L), i == count - 1 ? null : new RowKey((i + 1) * 100L))).ToList();

    [Fact]
    public async Task Every_chunk_is_compared_once_in_key_order_and_counted()
    {
        var tables = new Tables();

        VerificationResult result = await ChunkVerification.RunAsync("t", Ranges(5), tables.OpenAsync,
            (_, _) => throw new InvalidOperationException("nothing to repair"), CancellationToken.None);

        Assert.Equal(500, result.Rows);
        Assert.Equal(5, result.Chunks);
        Assert.Equal(0, result.RepairedChunks);
        Assert.Equal([0L, 1, 2, 3, 4], tables.Compared);
        Assert.Equal(1, tables.Opened);
    }

    [Fact]
    public async Task A_differing_chunk_is_repaired_and_only_it_is_compared_again_under_a_fresh_snapshot()
    {
        var tables = new Tables();
        tables.Differing.Add(2);
        var repairedRanges = new List<long>();

        VerificationResult result = await ChunkVerification.RunAsync("t", Ranges(4), tables.OpenAsync,
            (range, _) =>
            {
                repairedRanges.Add(range.Sequence);
                tables.Differing.Remove(range.Sequence);
                return Task.CompletedTask;
            }, CancellationToken.None);

        Assert.Equal(1, result.RepairedChunks);
        Assert.Equal(4, result.Chunks);
        Assert.Equal(400, result.Rows);
        Assert.Equal([2L], repairedRanges);
        Assert.Equal([0L, 1, 2, 3, 2], tables.Compared);
        Assert.Equal(2, tables.Opened);
    }

    [Fact]
    public async Task A_chunk_that_still_differs_after_three_repairs_stops_the_migration_with_its_own_error()
    {
        var tables = new Tables();
        tables.Differing.Add(1);
        int repairs = 0;

        var error = await Assert.ThrowsAsync<VerificationFailedException>(() => ChunkVerification.RunAsync("db.t", Ranges(3),
            tables.OpenAsync, (_, _) => { repairs++; return Task.CompletedTask; }, CancellationToken.None));

        Assert.Equal(ChunkVerification.MaxRepairs, repairs);
        Assert.Contains("1 chunk(s) of db.t still differ", error.Message, StringComparison.Ordinal);
        Assert.Contains("after (100) up to (200)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_dense_integer_key_is_cut_by_arithmetic_into_contiguous_ranges_open_at_both_ends()
    {
        List<KeyRange> ranges = ChunkVerification.RangesByWidth(new KeySpan(1, 5000, 4900), 1000)!;

        Assert.Equal(5, ranges.Count);
        Assert.Null(ranges[0].LowerExclusive);
        Assert.Equal(new RowKey(1000), ranges[0].UpperInclusive);
        Assert.Equal(new RowKey(4000), ranges[^1].LowerExclusive);
        Assert.Null(ranges[^1].UpperInclusive);
        for (int i = 1; i < ranges.Count; i++)
        {
            Assert.Equal(ranges[i - 1].UpperInclusive, ranges[i].LowerExclusive);
            Assert.Equal(i, ranges[i].Sequence);
        }

        // Bounds keep the key's own type, as the copy's comparisons bind them.
        Assert.IsType<int>(ranges[0].UpperInclusive!.Values[0]);
    }

    [Theory]
    [InlineData(1L, 10_000L, 4_000L)] // under half dense: ranges would hold too few rows to trust the estimate
    [InlineData(1L, 5_000L, 0L)] // no estimate (a table never analyzed)
    [InlineData(10L, 9L, 100L)] // no keys at all
    public void A_sparse_key_or_a_missing_estimate_is_left_to_the_walk(long min, long max, long estimatedRows)
    {
        Assert.Null(ChunkVerification.RangesByWidth(new KeySpan(min, max, estimatedRows), 1000));
    }

    [Fact]
    public void Keys_that_are_not_integers_are_left_to_the_walk()
    {
        Assert.Null(ChunkVerification.RangesByWidth(new KeySpan("a", "z", 100), 10));
        Assert.Null(ChunkVerification.RangesByWidth(new KeySpan(1.5m, 100m, 100), 10));
    }

    [Fact]
    public void Unsigned_keys_beyond_long_are_cut_in_their_own_type()
    {
        const ulong Min = ulong.MaxValue - 2_999;
        List<KeyRange> ranges = ChunkVerification.RangesByWidth(new KeySpan(Min, ulong.MaxValue, 3000), 1000)!;

        Assert.Equal(3, ranges.Count);
        Assert.Equal(new RowKey(Min + 999), ranges[0].UpperInclusive);
        Assert.Equal(new RowKey(Min + 1999), ranges[1].UpperInclusive);
    }
}
