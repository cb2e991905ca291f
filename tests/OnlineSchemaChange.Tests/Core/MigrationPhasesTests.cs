using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Tests.Core.Pipeline;

namespace OnlineSchemaChange.Tests.Core;

public sealed class MigrationPhasesTests
{
    private static readonly MigrationDigest Migration =
        MigrationDigest.Compute("db.t", "id int(11) NOT NULL; key id", AlterStatement.Parse("MODIFY k BIGINT", new TableName("db", "t"), SqlDialect.MySql), SqlDialect.MySql);

    /// <summary>Keeps the checkpoints it is given.</summary>
    private sealed class MemoryStore : ICheckpointStore
    {
        public List<MigrationCheckpoint> Saved { get; } = [];

        public Task SaveAsync(MigrationCheckpoint checkpoint, CancellationToken cancellationToken)
        {
            lock (Saved)
            {
                Saved.Add(checkpoint);
            }

            return Task.CompletedTask;
        }

        public Task<MigrationCheckpoint?> LoadAsync(CancellationToken cancellationToken) => Task.FromResult(Saved.LastOrDefault());
    }

    private sealed class NoWriter : IChangeWriter
    {
        public Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>Keys 1..n, each range copied at once.</summary>
    private sealed class Keys(int count) : ICopySource
    {
        public Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken)
        {
            long after = afterKey is null ? 0 : (long)afterKey.Values[0]!;
            return Task.FromResult(after + rows < count ? new RowKey(after + rows) : null);
        }

        public Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken)
        {
            long lo = range.LowerExclusive is null ? 0 : (long)range.LowerExclusive.Values[0]!;
            long hi = range.UpperInclusive is null ? count : (long)range.UpperInclusive.Values[0]!;
            return Task.FromResult(hi - lo);
        }
    }

    /// <summary>An engine that records, in one list with the reports, each step it is asked for.</summary>
    private sealed class RecordingEngine(MemoryStore store)
    {
        public List<string> Events { get; } = [];

        public bool CopyFinishedWhenIndexesStarted { get; private set; }

        public Exception? VerificationFailure { get; init; }

        public void Report(string state)
        {
            // The copy reports once a second: its repeats say nothing of the order.
            if (Events.Count == 0 || Events[^1] != state)
            {
                Events.Add(state);
            }
        }

        public EnginePhases Phases(bool afterSwap) => new()
        {
            BuildDeferredIndexesAsync = (report, _) =>
            {
                CopyFinishedWhenIndexesStarted = store.Saved.Count > 0 && store.Saved[^1].CopyFinished;
                report();
                Events.Add("[indexes]");
                return Task.CompletedTask;
            },
            CatchUpAsync = _ =>
            {
                Events.Add("[catch-up]");
                return Task.CompletedTask;
            },
            VerifyAsync = _ =>
            {
                Events.Add("[verify]");
                return VerificationFailure is null ? Task.FromResult(new VerificationResult(10, 1, 0)) : Task.FromException<VerificationResult>(VerificationFailure);
            },
            CutOverAsync = _ =>
            {
                Events.Add("[swap]");
                return Task.FromResult(new CutoverResult(TimeSpan.FromMilliseconds(5), 1));
            },
            AfterSwapAsync = afterSwap
                ? (report, _) =>
                {
                    report("rebuilding foreign keys");
                    return Task.CompletedTask;
                }
                : null,
        };
    }

    private static Checkpointer NewCheckpointer(MemoryStore store, MigrationCheckpoint? resumed) =>
        new(store, Migration, new ChangeApplier(new NoWriter()), new TestPosition(1), resumed, TimeSpan.FromMinutes(1), TimeProvider.System);

    private static KeysetCopier NewCopier() => new(new Keys(1000), new ChunkSizer(TimeSpan.FromMilliseconds(100)), null, 2);

    [Fact]
    public async Task A_fresh_run_copies_builds_indexes_catches_up_verifies_swaps_and_finishes_in_that_order()
    {
        var store = new MemoryStore();
        var engine = new RecordingEngine(store);
        await using Checkpointer checkpointer = NewCheckpointer(store, null);
        KeysetCopier copier = NewCopier();

        (VerificationResult? verification, CutoverResult cutover) = await MigrationPhases.RunAsync(engine.Phases(afterSwap: true), copier, checkpointer, null,
            Task.Delay(Timeout.Infinite), new OnlineAlterOptions(), engine.Report, CancellationToken.None);

        Assert.Equal(
            ["copying", "building indexes", "[indexes]", "catching up", "[catch-up]", "verifying", "[verify]", "cutting over", "[swap]", "rebuilding foreign keys", "done"],
            engine.Events);
        Assert.Equal(1000, copier.RowsCopied);
        Assert.True(engine.CopyFinishedWhenIndexesStarted, "a run stopped while building indexes must resume without copying");
        Assert.Equal(10, verification!.Rows);
        Assert.Equal(1, cutover.Attempts);
        // Saved after the copy, after the catch-up and just before the swap.
        Assert.Equal(3, store.Saved.Count);
        Assert.All(store.Saved, c => Assert.True(c.CopyFinished));
    }

    [Fact]
    public async Task A_resume_after_the_copy_with_verification_off_goes_from_the_indexes_to_the_swap()
    {
        var store = new MemoryStore();
        var engine = new RecordingEngine(store);
        var copied = new MigrationCheckpoint(Migration.Statement, Migration.Digest, null, true, "1", 1000, DateTimeOffset.UnixEpoch);
        await using Checkpointer checkpointer = NewCheckpointer(store, copied);
        KeysetCopier copier = NewCopier();

        (VerificationResult? verification, _) = await MigrationPhases.RunAsync(engine.Phases(afterSwap: false), copier, checkpointer, copied,
            Task.Delay(Timeout.Infinite), new OnlineAlterOptions { Verify = false }, engine.Report, CancellationToken.None);

        Assert.Equal(["building indexes", "[indexes]", "catching up", "[catch-up]", "cutting over", "[swap]", "done"], engine.Events);
        Assert.Equal(0, copier.RowsCopied);
        Assert.Null(verification);
    }

    [Fact]
    public async Task A_verification_that_fails_stops_the_run_before_the_swap()
    {
        var store = new MemoryStore();
        var engine = new RecordingEngine(store) { VerificationFailure = new VerificationFailedException("chunk 3 differs", "fix it") };
        await using Checkpointer checkpointer = NewCheckpointer(store, null);

        await Assert.ThrowsAsync<VerificationFailedException>(() => MigrationPhases.RunAsync(engine.Phases(afterSwap: true), NewCopier(), checkpointer, null,
            Task.Delay(Timeout.Infinite), new OnlineAlterOptions(), engine.Report, CancellationToken.None));

        Assert.Equal("[verify]", engine.Events[^1]);
        Assert.DoesNotContain("[swap]", engine.Events);
    }

    [Fact]
    public async Task The_before_cut_over_step_runs_after_verification_and_a_failing_one_stops_the_run_before_the_swap()
    {
        var store = new MemoryStore();
        var engine = new RecordingEngine(store);
        await using Checkpointer checkpointer = NewCheckpointer(store, null);
        var options = new OnlineAlterOptions
        {
            BeforeCutoverAsync = _ =>
            {
                engine.Events.Add("[before cut-over]");
                throw new OnlineSchemaChange.Core.OscException("vetoed");
            },
        };

        await Assert.ThrowsAsync<OnlineSchemaChange.Core.OscException>(() => MigrationPhases.RunAsync(engine.Phases(afterSwap: true), NewCopier(), checkpointer, null,
            Task.Delay(Timeout.Infinite), options, engine.Report, CancellationToken.None));

        Assert.Equal(["verifying", "[verify]", "[before cut-over]"], engine.Events.TakeLast(3));
        Assert.DoesNotContain("[swap]", engine.Events);
        Assert.DoesNotContain("cutting over", engine.Events);
    }
}
