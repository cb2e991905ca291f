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
}
