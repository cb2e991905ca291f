using System.Collections.Concurrent;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class KeysetCopierTests
{
    /// <summary>
    /// A table of integer keys held in memory, to test the copier's orchestration (boundaries, parallelism,
    /// watermark); copying real rows is tested against real servers with each engine.
    /// </summary>
    private sealed class KeyTable(IEnumerable<int> keys, int seed = 1) : ICopySource
    {
        private readonly object _lock = new();
        private readonly SortedSet<int> _keys = [.. keys];
        private readonly Random _random = new(seed);

        public ConcurrentBag<int> Copied { get; } = [];

        public Action<KeyRange>? BeforeCopy { get; set; }

        public Func<KeyRange, Task>? HoldBack { get; set; }

        public void Insert(int key)
        {
            lock (_lock)
            {
                _keys.Add(key);
            }
        }

        public Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken)
        {
            lock (_lock)
            {
                int after = afterKey is null ? int.MinValue : (int)afterKey.Values[0]!;
                int[] next = _keys.Where(k => k > after).Take(rows).ToArray();
                return Task.FromResult(next.Length < rows ? null : new RowKey(next[^1]));
            }
        }

        public async Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken)
        {
            BeforeCopy?.Invoke(range);
            if (HoldBack is not null)
            {
                await HoldBack(range);
            }

            int delay;
            int[] keys;
            lock (_lock)
            {
                delay = _random.Next(0, 5);
                int lower = range.LowerExclusive is null ? int.MinValue : (int)range.LowerExclusive.Values[0]!;
                int upper = range.UpperInclusive is null ? int.MaxValue : (int)range.UpperInclusive.Values[0]!;
                keys = _keys.Where(k => k > lower && k <= upper).ToArray();
            }

            // Finish out of order, as parallel chunks on a real server do.
            await Task.Delay(delay, cancellationToken);
            foreach (int key in keys)
            {
                Copied.Add(key);
            }

            return keys.Length;
        }
    }

    [Fact]
    public async Task Copies_every_row_exactly_once_with_parallel_workers()
    {
        var table = new KeyTable(Enumerable.Range(1, 10_000).Where(k => k % 7 != 0));
        var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromMilliseconds(5), initialRows: 100, minRows: 10, maxRows: 500), null, workers: 4);

        await copier.RunAsync(null, CancellationToken.None);

        Assert.Equal(Enumerable.Range(1, 10_000).Where(k => k % 7 != 0), table.Copied.Order());
        Assert.Equal(table.Copied.Count, copier.RowsCopied);
        Assert.True(copier.Finished);
        Assert.True(copier.ChunksCopied > 4);
    }

    [Fact]
    public async Task Rows_inserted_beyond_the_old_maximum_during_the_copy_are_copied_by_the_open_last_chunk()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        table.BeforeCopy = range =>
        {
            if (range.Sequence == 0)
            {
                table.Insert(5000);
            }
        };
        var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromSeconds(1), initialRows: 100, minRows: 100, maxRows: 100), null, workers: 1);

        await copier.RunAsync(null, CancellationToken.None);

        Assert.Contains(5000, table.Copied);
    }

    [Fact]
    public async Task Resumes_after_the_watermark_without_recopying()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromSeconds(1), initialRows: 100, minRows: 100, maxRows: 100), null, workers: 2);

        await copier.RunAsync(new RowKey(600), CancellationToken.None);

        Assert.Equal(Enumerable.Range(601, 400), table.Copied.Order());
    }

    [Fact]
    public async Task The_watermark_waits_for_an_earlier_chunk_that_finishes_late()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        var firstChunk = new TaskCompletionSource();
        table.HoldBack = range => range.Sequence == 0 ? firstChunk.Task : Task.CompletedTask;
        var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromSeconds(1), initialRows: 100, minRows: 100, maxRows: 100), null, workers: 3);

        Task run = copier.RunAsync(new RowKey(0), CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (copier.ChunksCopied < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "later chunks never finished");
            await Task.Delay(10);
        }

        // Later chunks are done, the first is not: nothing beyond the resume point may be claimed.
        Assert.Equal(new RowKey(0), copier.Watermark);

        firstChunk.SetResult();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(new RowKey(1000), copier.Watermark);
        Assert.True(copier.Finished);
    }

    [Fact]
    public async Task Waits_while_throttled()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"osc-copier-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(flag, "");
        try
        {
            var table = new KeyTable(Enumerable.Range(1, 100));
            await using var throttler = new Throttler([new FlagFileSignal(flag)], TimeSpan.FromMilliseconds(20), TimeProvider.System);
            await throttler.CheckAsync(CancellationToken.None);
            throttler.Start();
            var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromSeconds(1)), throttler, workers: 2);

            Task run = copier.RunAsync(null, CancellationToken.None);
            await Task.Delay(200);
            Assert.Empty(table.Copied);

            File.Delete(flag);
            await run.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(100, table.Copied.Count);
        }
        finally
        {
            File.Delete(flag);
        }
    }

    [Fact]
    public async Task A_failing_chunk_stops_the_copy_with_its_error()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        table.BeforeCopy = range =>
        {
            if (range.Sequence == 3)
            {
                throw new InvalidOperationException("lock wait timeout");
            }
        };
        var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromSeconds(1), initialRows: 100, minRows: 100, maxRows: 100), null, workers: 2);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => copier.RunAsync(null, CancellationToken.None));
        Assert.Equal("lock wait timeout", e.Message);
        Assert.False(copier.Finished);
    }

    [Fact]
    public async Task A_failure_in_the_only_worker_does_not_leave_the_producer_blocked()
    {
        var table = new KeyTable(Enumerable.Range(1, 10_000));
        table.BeforeCopy = _ => throw new InvalidOperationException("shadow table dropped");
        var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromSeconds(1), initialRows: 100, minRows: 100, maxRows: 100), null, workers: 1);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => copier.RunAsync(null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("shadow table dropped", e.Message);
    }
}
