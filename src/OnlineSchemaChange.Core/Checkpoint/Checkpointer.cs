using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Core.Checkpoint;

/// <summary>
/// Saves where the migration stands every interval and whenever the caller asks (at phase changes, and when
/// stopping): the copier's watermark with the ranges finished beyond it, and the applier's applied position. Both
/// only ever name work that is durable in the shadow (finished chunks, a flushed transaction), and each is valid on
/// its own, so sampling them at slightly different moments is harmless; see docs/correctness.md. A failed save is kept as <see cref="LastError"/>
/// and retried at the next tick: the migration itself goes on, and the previous checkpoint stays valid.
/// </summary>
public sealed class Checkpointer : IAsyncDisposable
{
    private readonly ICheckpointStore _store;
    private readonly MigrationDigest _migration;
    private readonly ChangeApplier _applier;
    private readonly ReplicationPosition _start;
    private readonly MigrationCheckpoint? _resumedFrom;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _saving = new(1, 1);
    private readonly BackgroundLoop _background = new();
    private KeysetCopier? _copier;
    private volatile bool _copyFinished;

    /// <param name="store">Where checkpoints go.</param>
    /// <param name="migration">Which migration this is.</param>
    /// <param name="applier">Whose applied position is recorded.</param>
    /// <param name="start">Where replay started: recorded until the applier has applied anything.</param>
    /// <param name="resumedFrom">The checkpoint this run resumed from, whose copy progress counts until the copier's own.</param>
    /// <param name="interval">How often to save while running.</param>
    /// <param name="time">The clock.</param>
    public Checkpointer(ICheckpointStore store, MigrationDigest migration, ChangeApplier applier, ReplicationPosition start,
        MigrationCheckpoint? resumedFrom, TimeSpan interval, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(migration);
        ArgumentNullException.ThrowIfNull(applier);
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        _store = store;
        _migration = migration;
        _applier = applier;
        _start = start;
        _resumedFrom = resumedFrom;
        _interval = interval;
        _time = time;
        _copyFinished = resumedFrom?.CopyFinished ?? false;
    }

    /// <summary>The last checkpoint that reached the store.</summary>
    public MigrationCheckpoint? LastSaved { get; private set; }

    public Exception? LastError { get; private set; }

    public long Saves { get; private set; }

    /// <summary>Rows the copy had covered before this run (from the checkpoint resumed from).</summary>
    public long RowsCopiedBefore => _resumedFrom?.RowsCopied ?? 0;

    /// <summary>The copy whose watermark is recorded from now on (its resume point is the checkpoint's watermark).</summary>
    public void Track(KeysetCopier copier) => _copier = copier ?? throw new ArgumentNullException(nameof(copier));

    /// <summary>The whole table is copied: later checkpoints resume with replay, verification and the swap only.</summary>
    public void MarkCopyFinished() => _copyFinished = true;

    /// <summary>What a checkpoint taken now would record.</summary>
    public MigrationCheckpoint Sample()
    {
        KeysetCopier? copier = _copier;
        // Watermark and ranges beyond it from one instant of the copy; until it starts, those resumed from.
        CopyProgress? progress = copier?.Progress();
        bool finished = _copyFinished || (progress?.Finished ?? false);
        RowKey? watermark = finished ? null : progress is null ? _resumedFrom?.Watermark : progress.Watermark;
        IReadOnlyList<CopiedRange> ahead = finished ? [] : progress?.CopiedAhead ?? _resumedFrom?.CopiedAhead ?? [];
        long rows = RowsCopiedBefore + (progress?.RowsCopied ?? 0);
        // The resume point, not the applied position itself: changes the stream still holds (read, not yet due)
        // must be read again by a resumed run.
        ReplicationPosition position = (_applier.Applied ?? _start).ResumePoint;
        return new MigrationCheckpoint(_migration.Statement, _migration.Digest, watermark, finished, position.ToString(), rows, _time.GetUtcNow())
        {
            CopiedAhead = ahead,
        };
    }

    public async Task<MigrationCheckpoint> SaveAsync(CancellationToken cancellationToken)
    {
        await _saving.WaitAsync(cancellationToken);
        try
        {
            MigrationCheckpoint checkpoint = Sample();
            await _store.SaveAsync(checkpoint, cancellationToken);
            LastSaved = checkpoint;
            LastError = null;
            Saves++;
            return checkpoint;
        }
        finally
        {
            _saving.Release();
        }
    }

    /// <summary>
    /// Saves now if it can; a failure is kept as <see cref="LastError"/> and the previous checkpoint stands. For phase
    /// changes, where a lost save only means a resume redoes a little more.
    /// </summary>
    public async Task<bool> TrySaveAsync(CancellationToken cancellationToken)
    {
        try
        {
            await SaveAsync(cancellationToken);
            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LastError = e;
            return false;
        }
    }

    public void Start() => _background.Start(LoopAsync);

    public async ValueTask DisposeAsync()
    {
        await _background.DisposeAsync();
        _saving.Dispose();
    }

    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_interval, _time);
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            await TrySaveAsync(cancellationToken);
        }
    }
}
