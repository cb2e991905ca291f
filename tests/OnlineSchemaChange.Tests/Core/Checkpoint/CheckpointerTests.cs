using System.Threading.Channels;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Tests.Core.Pipeline;

namespace OnlineSchemaChange.Tests.Core.Checkpoint;

public sealed class CheckpointerTests
{
    private static readonly MigrationDigest Migration =
        MigrationDigest.Compute("db.t", "id int(11) NOT NULL; key id", AlterStatement.Parse("MODIFY k BIGINT", new TableName("db", "t"), SqlDialect.MySql), SqlDialect.MySql);

    /// <summary>Keeps every checkpoint it is given; can be told to fail.</summary>
    private sealed class MemoryStore : ICheckpointStore
    {
        private readonly List<MigrationCheckpoint> _saved = [];

        public int FailuresToCome { get; set; }

        public List<MigrationCheckpoint> Saved
        {
            get
            {
                lock (_saved)
                {
                    return _saved.ToList();
                }
            }
        }

        public Task SaveAsync(MigrationCheckpoint checkpoint, CancellationToken cancellationToken)
        {
            if (FailuresToCome > 0)
            {
                FailuresToCome--;
                throw new InvalidOperationException("store unavailable");
            }

            // Stored as text, as a real store does: what comes back is what a resume would read.
            lock (_saved)
            {
                _saved.Add(CheckpointJson.Deserialize(CheckpointJson.Serialize(checkpoint)));
            }

            return Task.CompletedTask;
        }

        public Task<MigrationCheckpoint?> LoadAsync(CancellationToken cancellationToken) => Task.FromResult(Saved is { Count: > 0 } saved ? saved[^1] : null);
    }

    private sealed class NoWriter : IChangeWriter
    {
        public Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>Keys 1..n; ranges after <see cref="HoldFrom"/> wait for <see cref="Release"/>.</summary>
    private sealed class Keys(int count) : ICopySource
    {
        public long HoldFrom { get; init; } = long.MaxValue;

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken)
        {
            long after = afterKey is null ? 0 : (long)afterKey.Values[0]!;
            return Task.FromResult(after + rows < count ? new RowKey(after + rows) : null);
        }

        public async Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken)
        {
            if (range.Sequence >= HoldFrom)
            {
                await Release.Task.WaitAsync(cancellationToken);
            }

            long lo = range.LowerExclusive is null ? 0 : (long)range.LowerExclusive.Values[0]!;
            long hi = range.UpperInclusive is null ? count : (long)range.UpperInclusive.Values[0]!;
            return hi - lo;
        }
    }

    private static ChunkSizer Sizer() => new(TimeSpan.FromMilliseconds(100));

    private static ChangeApplier Applier() => new(new NoWriter());

    [Fact]
    public void Before_any_work_it_records_the_start_position_and_the_checkpoint_resumed_from()
    {
        var resumedFrom = new MigrationCheckpoint(Migration.Statement, Migration.Digest, new RowKey(500L), false, "40", 500, DateTimeOffset.UnixEpoch);
        var checkpointer = new Checkpointer(new MemoryStore(), Migration, Applier(), new TestPosition(40), resumedFrom, TimeSpan.FromSeconds(1), TimeProvider.System);

        MigrationCheckpoint sample = checkpointer.Sample();

        Assert.Equal("40", sample.Position);
        Assert.Equal(new RowKey(500L), sample.Watermark);
        Assert.False(sample.CopyFinished);
        Assert.Equal(500, sample.RowsCopied);
        Assert.Equal(Migration.Digest, sample.Digest);
    }

    [Fact]
    public async Task It_records_the_applied_position_and_the_watermark_of_the_finished_prefix_only()
    {
        var applier = Applier();
        var changes = Channel.CreateUnbounded<ReplicationMessage>();
        Task applying = applier.RunAsync(changes.Reader, CancellationToken.None);
        var store = new MemoryStore();
        await using var checkpointer = new Checkpointer(store, Migration, applier, new TestPosition(10), null, TimeSpan.FromSeconds(1), TimeProvider.System);

        // Chunks 0-2 finish, chunk 3 and later are held: the watermark is the end of chunk 2, not beyond.
        var source = new Keys(10_000) { HoldFrom = 3 };
        var copier = new KeysetCopier(source, Sizer(), null, 1);
        checkpointer.Track(copier);
        Task copy = copier.RunAsync(null, CancellationToken.None);
        while (copier.ChunksCopied < 3)
        {
            await Task.Delay(5);
        }

        await changes.Writer.WriteAsync(new RowChangeMessage(RowChange.Insert(new RowKey(1L), [1L])));
        await changes.Writer.WriteAsync(new PositionMessage(new TestPosition(25)));
        await applier.WaitForAsync(new TestPosition(25), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        MigrationCheckpoint held = await checkpointer.SaveAsync(CancellationToken.None);
        Assert.Equal("25", held.Position);
        Assert.False(held.CopyFinished);
        Assert.Equal(copier.Watermark, held.Watermark);
        Assert.Equal(held, store.Saved[^1] with { Watermark = held.Watermark });
        Assert.Equal(held.Watermark, store.Saved[^1].Watermark);
        long end = (long)held.Watermark!.Values[0]!;
        Assert.Equal(end, held.RowsCopied);

        source.Release.SetResult();
        await copy;
        MigrationCheckpoint done = await checkpointer.SaveAsync(CancellationToken.None);
        Assert.True(done.CopyFinished);
        Assert.Null(done.Watermark);
        Assert.Equal(10_000, done.RowsCopied);

        changes.Writer.Complete();
        await applying;
    }

    [Fact]
    public async Task It_records_the_resume_point_when_the_stream_holds_changes_read_before_the_applied_position()
    {
        var applier = Applier();
        var changes = Channel.CreateUnbounded<ReplicationMessage>();
        Task applying = applier.RunAsync(changes.Reader, CancellationToken.None);
        await using var checkpointer = new Checkpointer(new MemoryStore(), Migration, applier, new TestPosition(10), null, TimeSpan.FromSeconds(1), TimeProvider.System);

        // Applied up to 90, but changes read at 40 are still held: a resume must read them again.
        await changes.Writer.WriteAsync(new PositionMessage(new TestPosition(90, resumeAt: 40)));
        await applier.WaitForAsync(new TestPosition(90), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("40", (await checkpointer.SaveAsync(CancellationToken.None)).Position);

        await changes.Writer.WriteAsync(new PositionMessage(new TestPosition(95)));
        await applier.WaitForAsync(new TestPosition(95), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("95", (await checkpointer.SaveAsync(CancellationToken.None)).Position);

        changes.Writer.Complete();
        await applying;
    }

    [Fact]
    public async Task A_resumed_copy_adds_its_rows_to_the_earlier_runs_and_a_finished_copy_stays_finished()
    {
        var resumedFrom = new MigrationCheckpoint(Migration.Statement, Migration.Digest, new RowKey(4_000L), false, "7", 4_000, DateTimeOffset.UnixEpoch);
        await using var checkpointer = new Checkpointer(new MemoryStore(), Migration, Applier(), new TestPosition(7), resumedFrom, TimeSpan.FromSeconds(1), TimeProvider.System);
        var source = new Keys(10_000) { HoldFrom = 0 };
        var copier = new KeysetCopier(source, Sizer(), null, 1);
        checkpointer.Track(copier);

        Task copy = copier.RunAsync(resumedFrom.Watermark, CancellationToken.None);
        Assert.Equal(new RowKey(4_000L), checkpointer.Sample().Watermark);
        source.Release.SetResult();
        await copy;

        MigrationCheckpoint done = checkpointer.Sample();
        Assert.True(done.CopyFinished);
        Assert.Equal(4_000 + 6_000, done.RowsCopied);

        var finished = new Checkpointer(new MemoryStore(), Migration, Applier(), new TestPosition(7), done, TimeSpan.FromSeconds(1), TimeProvider.System);
        Assert.True(finished.Sample().CopyFinished);
        Assert.Null(finished.Sample().Watermark);
    }

    [Fact]
    public async Task The_ranges_copied_beyond_the_watermark_are_saved_and_carried_through_a_resume_until_passed()
    {
        CopiedRange[] ahead = [new CopiedRange(new RowKey(6_000L), new RowKey(7_000L))];
        var resumedFrom = new MigrationCheckpoint(Migration.Statement, Migration.Digest, new RowKey(4_000L), false, "7", 5_000, DateTimeOffset.UnixEpoch)
        {
            CopiedAhead = ahead,
        };
        var store = new MemoryStore();
        await using var checkpointer = new Checkpointer(store, Migration, Applier(), new TestPosition(7), resumedFrom, TimeSpan.FromSeconds(1), TimeProvider.System);
        var source = new Keys(10_000) { HoldFrom = 0 };
        var copier = new KeysetCopier(source, Sizer(), null, 1);
        checkpointer.Track(copier);

        // Before the copy starts, and while it is held before reaching the range: the range is still recorded.
        Assert.Equal(ahead, (await checkpointer.SaveAsync(CancellationToken.None)).CopiedAhead);
        Task copy = copier.RunAsync(resumedFrom.Watermark, resumedFrom.CopiedAhead, CancellationToken.None);
        Assert.Equal(ahead, (await checkpointer.SaveAsync(CancellationToken.None)).CopiedAhead);
        Assert.Equal(ahead, store.Saved[^1].CopiedAhead);

        source.Release.SetResult();
        await copy;
        MigrationCheckpoint done = await checkpointer.SaveAsync(CancellationToken.None);
        Assert.True(done.CopyFinished);
        Assert.Empty(done.CopiedAhead);
        Assert.Equal(1, copier.RangesSkipped);
        Assert.Equal(5_000 + 5_000, done.RowsCopied);
    }

    [Fact]
    public async Task It_saves_every_interval_and_a_failed_save_is_retried_at_the_next_tick()
    {
        var store = new MemoryStore { FailuresToCome = 2 };
        await using (var checkpointer = new Checkpointer(store, Migration, Applier(), new TestPosition(3), null, TimeSpan.FromMilliseconds(20), TimeProvider.System))
        {
            checkpointer.Start();
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (store.Saved.Count < 3)
            {
                Assert.True(DateTime.UtcNow < deadline, "the checkpointer stopped saving after a failure");
                await Task.Delay(10);
            }

            Assert.Equal(0, store.FailuresToCome);
            Assert.NotNull(checkpointer.LastSaved);
        }

        int saved = store.Saved.Count;
        await Task.Delay(100);
        Assert.Equal(saved, store.Saved.Count);
    }
}
