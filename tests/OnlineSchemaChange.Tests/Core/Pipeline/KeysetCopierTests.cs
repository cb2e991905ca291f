using System.Collections.Concurrent;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class KeysetCopierTests
{
    /// <summary>
    /// A table of integer keys held in memory, to test the copier's orchestration (boundaries, parallelism,
    /// watermark); copying real rows is tested against real servers with each engine.
    /// </summary>
    private sealed class KeyTable(IEnumerable<int> keys, int seed = 1) : ICopySource, IKeySpanSource
    {
        private int _walks;
        private readonly object _lock = new();
        private readonly SortedSet<int> _keys = [.. keys];
        private readonly Random _random = new(seed);

        public ConcurrentBag<int> Copied { get; } = [];

        /// <summary>The rows each chunk covered.</summary>
        public ConcurrentBag<int> ChunkRows { get; } = [];

        /// <summary>How often a chunk's end was found by walking the keys.</summary>
        public int Walks => Volatile.Read(ref _walks);

        public Action<KeyRange>? BeforeCopy { get; set; }

        public Func<KeyRange, Task>? HoldBack { get; set; }

        public void Insert(int key)
        {
            lock (_lock)
            {
                _keys.Add(key);
            }
        }

        public Task<KeySpan?> ReadKeySpanAsync(CancellationToken cancellationToken)
        {
            lock (_lock)
            {
                return Task.FromResult(_keys.Count == 0 ? null : new KeySpan(_keys.Min, _keys.Max, _keys.Count));
            }
        }

        public Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _walks);
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

            ChunkRows.Add(keys.Length);
            return keys.Length;
        }
    }

    [Fact]
    public async Task Workers_beyond_the_operators_count_take_no_range_until_it_rises()
    {
        var table = new KeyTable(Enumerable.Range(1, 5_000));
        int inFlight = 0, mostInFlight = 0, chunks = 0, active = 1;
        table.HoldBack = async _ =>
        {
            int now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref mostInFlight, now);
            await Task.Delay(2);
            Interlocked.Decrement(ref inFlight);
            if (Interlocked.Increment(ref chunks) == 20)
            {
                // Half way: no chunk ever ran beside another; then the operator allows three.
                Assert.Equal(1, Volatile.Read(ref mostInFlight));
                Volatile.Write(ref active, 3);
            }
        };
        var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromMilliseconds(5), initialRows: 100, minRows: 100, maxRows: 100), null, workers: 4)
        {
            ActiveWorkers = () => Volatile.Read(ref active),
        };

        await copier.RunAsync(null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(Enumerable.Range(1, 5_000), table.Copied.Order());
        Assert.InRange(mostInFlight, 1, 3);
    }

    [Fact]
    public async Task An_operator_raises_the_workers_above_the_count_the_copy_started_with()
    {
        var table = new KeyTable(Enumerable.Range(1, 3_000));
        int inFlight = 0, mostInFlight = 0, chunks = 0, active = 1;
        var twoAtOnce = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        table.HoldBack = async _ =>
        {
            int now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref mostInFlight, now);
            if (now >= 2)
            {
                twoAtOnce.TrySetResult();
            }

            if (Interlocked.Increment(ref chunks) == 5)
            {
                Assert.Equal(1, Volatile.Read(ref mostInFlight));
                Volatile.Write(ref active, 4);
            }

            if (Volatile.Read(ref active) > 1)
            {
                // A parked worker must wake and take a range while this one still copies; if none does, the copy fails.
                await twoAtOnce.Task.WaitAsync(TimeSpan.FromSeconds(10));
            }

            Interlocked.Decrement(ref inFlight);
        };
        int tasks = MigrationControls.CopyTasks(1, canGrow: true);
        var copier = new KeysetCopier(table, new ChunkSizer(TimeSpan.FromMilliseconds(5), initialRows: 100, minRows: 100, maxRows: 100), null, tasks)
        {
            ActiveWorkers = () => Volatile.Read(ref active),
        };

        await copier.RunAsync(null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(Enumerable.Range(1, 3_000), table.Copied.Order());
        Assert.InRange(mostInFlight, 2, 4);
    }

    [Fact]
    public async Task A_dense_key_is_cut_by_arithmetic_and_rows_appended_meanwhile_are_cut_too()
    {
        int[] initial = Enumerable.Range(1, 10_000).Where(k => k % 7 != 0).ToArray();
        var table = new KeyTable(initial);
        table.BeforeCopy = range =>
        {
            if (range.Sequence == 3)
            {
                // Appended beyond the maximum read at the start, as an auto-increment key grows under the copy.
                foreach (int key in Enumerable.Range(10_001, 2_000))
                {
                    table.Insert(key);
                }
            }
        };
        var copier = new KeysetCopier(new WidthChunkedCopySource(table, table),
            new ChunkSizer(TimeSpan.FromSeconds(10), initialRows: 500, minRows: 500, maxRows: 500), null, workers: 4);

        await copier.RunAsync(null, CancellationToken.None);

        Assert.Equal(initial.Concat(Enumerable.Range(10_001, 2_000)), table.Copied.Order());
        Assert.Equal(0, table.Walks);
        Assert.True(table.ChunkRows.Max() <= 500, $"a chunk covered {table.ChunkRows.Max()} rows");
        Assert.True(copier.Finished);
    }

    [Fact]
    public async Task A_sparse_key_is_walked()
    {
        var table = new KeyTable(Enumerable.Range(1, 1_000).Select(k => k * 5));
        var source = new WidthChunkedCopySource(table, table);
        var copier = new KeysetCopier(source, new ChunkSizer(TimeSpan.FromSeconds(10), initialRows: 100, minRows: 100, maxRows: 100), null, workers: 2);

        await copier.RunAsync(null, CancellationToken.None);

        Assert.Equal(Enumerable.Range(1, 1_000).Select(k => k * 5), table.Copied.Order());
        Assert.False(source.CutsByWidth);
        Assert.True(table.Walks >= 10, $"{table.Walks} walks");
    }

    [Fact]
    public async Task A_resumed_watermark_of_another_integer_type_gives_ends_in_the_keys_own_type()
    {
        var table = new KeyTable(Enumerable.Range(1, 10_000));
        var source = new WidthChunkedCopySource(table, table);

        RowKey? end = await source.FindChunkEndAsync(new RowKey(4_500L), 1_000, CancellationToken.None);
        RowKey? last = await source.FindChunkEndAsync(new RowKey(9_500), 1_000, CancellationToken.None);

        Assert.Equal(new RowKey(5_500), end);
        Assert.IsType<int>(end!.Values[0]);
        Assert.Null(last);
        Assert.Equal(0, table.Walks);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while (value > (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
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

    private static ChunkSizer HundredRows() => new(TimeSpan.FromSeconds(1), initialRows: 100, minRows: 100, maxRows: 100);

    [Fact]
    public async Task A_resume_skips_the_ranges_copied_beyond_the_watermark()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        var copier = new KeysetCopier(table, HundredRows(), null, workers: 3);

        await copier.RunAsync(new RowKey(300), [new CopiedRange(new RowKey(350), new RowKey(480)), new CopiedRange(new RowKey(700), new RowKey(820))],
            CancellationToken.None);

        int[] expected = [.. Enumerable.Range(301, 50), .. Enumerable.Range(481, 220), .. Enumerable.Range(821, 180)];
        Assert.Equal(expected, table.Copied.Order());
        Assert.Equal(2, copier.RangesSkipped);
        Assert.Equal(expected.Length, copier.RowsCopied);
        Assert.True(copier.Finished);
    }

    [Fact]
    public async Task A_resume_without_a_watermark_skips_ranges_too()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        var copier = new KeysetCopier(table, HundredRows(), null, workers: 2);

        await copier.RunAsync(null, [new CopiedRange(new RowKey(100), new RowKey(900))], CancellationToken.None);

        Assert.Equal([.. Enumerable.Range(1, 100), .. Enumerable.Range(901, 100)], table.Copied.Order());
        Assert.True(copier.Finished);
    }

    [Fact]
    public async Task A_resume_skips_a_copied_last_range_and_still_finishes()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        var copier = new KeysetCopier(table, HundredRows(), null, workers: 2);

        await copier.RunAsync(new RowKey(500), [new CopiedRange(new RowKey(650), new RowKey(700)), new CopiedRange(new RowKey(700), null)], CancellationToken.None);

        Assert.Equal(Enumerable.Range(501, 150), table.Copied.Order());
        Assert.True(copier.Finished);
        CopyProgress progress = copier.Progress()!;
        Assert.Equal(new RowKey(700), progress.Watermark);
        Assert.True(progress.Finished);
        Assert.Empty(progress.CopiedAhead);
    }

    [Theory]
    [InlineData("overlaps the watermark")]
    [InlineData("out of order")]
    [InlineData("text keys")]
    [InlineData("open range before another")]
    public async Task Ranges_that_cannot_be_trusted_are_copied_again(string flaw)
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        var copier = new KeysetCopier(table, HundredRows(), null, workers: 2);
        var watermark = new RowKey(300);
        IReadOnlyList<CopiedRange> ahead = flaw switch
        {
            "overlaps the watermark" => [new CopiedRange(new RowKey(250), new RowKey(400))],
            "out of order" => [new CopiedRange(new RowKey(600), new RowKey(700)), new CopiedRange(new RowKey(400), new RowKey(500))],
            "text keys" => [new CopiedRange(new RowKey("400"), new RowKey("500"))],
            "open range before another" => [new CopiedRange(new RowKey(400), null), new CopiedRange(new RowKey(600), new RowKey(700))],
            _ => throw new ArgumentOutOfRangeException(nameof(flaw)),
        };

        await copier.RunAsync(watermark, ahead, CancellationToken.None);

        Assert.Equal(Enumerable.Range(301, 700), table.Copied.Order());
        Assert.Equal(0, copier.RangesSkipped);
    }

    [Fact]
    public async Task Progress_records_the_ranges_finished_beyond_the_watermark_for_a_resume_to_skip()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        var held = new TaskCompletionSource();
        table.HoldBack = range => range.Sequence is 0 or 4 ? held.Task : Task.CompletedTask;
        using var stop = new CancellationTokenSource();
        var copier = new KeysetCopier(table, HundredRows(), null, workers: 3);
        Task run = copier.RunAsync(null, stop.Token);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (copier.ChunksCopied < 9)
        {
            Assert.True(DateTime.UtcNow < deadline, "the chunks after the held ones never finished");
            await Task.Delay(10);
        }

        // Chunks 0 (keys 1-100) and 4 (401-500) are held; the others are done, each run of them as one range.
        CopyProgress progress = copier.Progress()!;
        Assert.Null(progress.Watermark);
        Assert.Equal([new CopiedRange(new RowKey(100), new RowKey(400)), new CopiedRange(new RowKey(500), null)], progress.CopiedAhead);
        await stop.CancelAsync();
        held.SetResult();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(TimeSpan.FromSeconds(30)));

        // A resume from the first chunk's end (as if it had finished) copies only what was held.
        var again = new KeyTable(Enumerable.Range(1, 1000));
        var resumed = new KeysetCopier(again, HundredRows(), null, workers: 3);
        Task resuming = resumed.RunAsync(new RowKey(100), progress.CopiedAhead, CancellationToken.None);
        await resuming.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Enumerable.Range(401, 100), again.Copied.Order());
    }

    [Fact]
    public async Task A_resumed_run_keeps_the_ranges_it_has_not_reached_yet_in_its_progress()
    {
        var table = new KeyTable(Enumerable.Range(1, 1000));
        var held = new TaskCompletionSource();
        table.HoldBack = range => range.Sequence == 0 ? held.Task : Task.CompletedTask;
        var copier = new KeysetCopier(table, HundredRows(), null, workers: 1);
        CopiedRange[] ahead = [new CopiedRange(new RowKey(600), new RowKey(700))];

        Assert.Null(copier.Progress());
        Task run = copier.RunAsync(new RowKey(300), ahead, CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (table.Copied.IsEmpty && copier.Progress() is not { })
        {
            Assert.True(DateTime.UtcNow < deadline);
            await Task.Delay(10);
        }

        // The only worker is held on its first chunk: a checkpoint now must still carry the range to skip.
        Assert.Equal(ahead, copier.Progress()!.CopiedAhead);
        held.SetResult();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([.. Enumerable.Range(301, 300), .. Enumerable.Range(701, 300)], table.Copied.Order());
    }
}
