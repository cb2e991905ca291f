using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Verify;

namespace OnlineSchemaChange.Core.Migration;

public sealed record OnlineAlterOptions
{
    public int Workers { get; init; } = 2;

    // Chunks take no locks on the original, so their length costs the application nothing; it bounds how long the
    // replay waits on a copy in progress (see CopyFence).
    public TimeSpan ChunkTime { get; init; } = TimeSpan.FromMilliseconds(500);

    public IReadOnlyList<string> ReplicaConnectionStrings { get; init; } = [];

    public TimeSpan MaxLag { get; init; } = TimeSpan.FromMilliseconds(1500);

    public string? MaxLoad { get; init; }

    public string? CriticalLoad { get; init; }

    public string? ThrottleFlagFile { get; init; }

    /// <summary>Pause the copy while a small write, timed as the application would see it, takes longer (null: never).</summary>
    public TimeSpan? MaxWriteLatency { get; init; }

    public string? PostponeCutoverFlagFile { get; init; }

    public bool Verify { get; init; } = true;

    public bool DropOldTable { get; init; }

    public CutoverOptions Cutover { get; init; } = new();

    /// <summary>The server id the change stream registers with, where the engine needs one (MySQL/MariaDB); null picks
    /// a free one.</summary>
    public uint? ServerId { get; init; }

    /// <summary>Continue an interrupted run of the same ALTER from its checkpoint, instead of refusing its leftovers.</summary>
    public bool Resume { get; init; }

    /// <summary>On failure or cancellation drop the shadow and bookkeeping table, instead of keeping them for --resume.</summary>
    public bool CleanupOnAbort { get; init; }

    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>What to do about foreign keys to or from the table (MySQL/MariaDB); PostgreSQL's swap moves them itself.</summary>
    public ForeignKeyMethod ForeignKeys { get; init; } = ForeignKeyMethod.Refuse;

    /// <summary>
    /// MariaDB: log the copy's writes under skip_replication so osc's own binlog stream is spared them. True forces
    /// it, false never, null (the default) when every binlog reader is known to apply marked events.
    /// </summary>
    public bool? CopySkipReplication { get; init; }

    /// <summary>
    /// MySQL/MariaDB: build the shadow's plain secondary indexes after the copy (true) or keep them during it (false);
    /// null (the default) defers them unless a watched replica would then run the build as one long statement.
    /// </summary>
    public bool? DeferIndexes { get; init; }

    /// <summary>
    /// Runs after verification, right before the swap (the operator's before-cut-over hooks); throwing stops the
    /// migration there, its work kept for --resume. Null: nothing.
    /// </summary>
    public Func<CancellationToken, Task>? BeforeCutoverAsync { get; init; }

    /// <summary>
    /// What an operator may change while the run goes on (the control socket); null: the values above hold for the
    /// whole run. Build it from these options: <c>options with { Controls = new MigrationControls(options) }</c>.
    /// </summary>
    public MigrationControls? Controls { get; init; }

    /// <summary>The copy's chunk sizer: aims at the operator's chunk time as it is now, or --chunk-time-millis.</summary>
    public Copy.ChunkSizer NewChunkSizer() => Controls is { } controls ? new Copy.ChunkSizer(() => controls.ChunkTime) : new Copy.ChunkSizer(ChunkTime);
}

/// <summary>How a MySQL/MariaDB migration treats foreign keys to or from the table (docs/operations.md).</summary>
public enum ForeignKeyMethod
{
    /// <summary>Refuse a table with foreign keys to or from it, before anything is created.</summary>
    Refuse,

    /// <summary>
    /// Recreate the table's own foreign keys on the new table at the swap, and rebuild the referencing tables'
    /// constraints to point at the new table right after it.
    /// </summary>
    Rebuild,
}

/// <summary>Progress as the command shows it: a state, copy counts, replay counts, the throttle reason.</summary>
public sealed record OnlineAlterProgress(string State, long RowsCopied, long EstimatedRows, long ChangesApplied, string? Throttled, TimeSpan Elapsed)
{
    /// <summary>What the replay has read and not yet written to the shadow (<see cref="Apply.ChangeApplier.Backlog"/>).</summary>
    public long Backlog { get; init; }

    /// <summary>The largest lag of the watched replicas, in milliseconds (infinity: one has not seen the heartbeat yet); null when none is watched or measured.</summary>
    public double? ReplicaLagMillis { get; init; }
}

public sealed record OnlineAlterResult(TimeSpan Total, long RowsCopied, long ChangesApplied, VerificationResult? Verification, CutoverResult Cutover, string OldTable)
{
    /// <summary>For a resumed run: the rows the interrupted run had copied; <see cref="RowsCopied"/> counts this run's alone.</summary>
    public long? ResumedAfterRows { get; init; }

    /// <summary>
    /// True for a --resume that found the tables already swapped by the interrupted run and only finished the steps
    /// after the swap: it copied, replayed, verified and held nothing itself, so those figures are not its to report.
    /// </summary>
    public bool FinishedAfterSwap { get; init; }

    /// <summary>What the run did that the operator should know of, besides the swap's own notes.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}
