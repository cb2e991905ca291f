using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Verify;

namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// What an engine does at each phase of a migration once its shadow exists, its replay runs and its first checkpoint
/// is saved. <see cref="MigrationPhases.RunAsync"/> runs them in the order every engine follows.
/// </summary>
public sealed class EnginePhases
{
    /// <summary>Builds the shadow's indexes the copy left out, calling the given report first when there are any.</summary>
    public required Func<Action, CancellationToken, Task> BuildDeferredIndexesAsync { get; init; }

    /// <summary>Returns once the shadow holds every change committed before the call.</summary>
    public required Func<CancellationToken, Task> CatchUpAsync { get; init; }

    /// <summary>Runs each second while the swap is postponed (null: nothing).</summary>
    public Func<CancellationToken, Task>? WhilePostponedAsync { get; init; }

    /// <summary>Compares the shadow with the original; throws <see cref="VerificationFailedException"/> on a mismatch it cannot repair.</summary>
    public required Func<CancellationToken, Task<VerificationResult>> VerifyAsync { get; init; }

    /// <summary>Swaps the tables. Once it returns, the new table is live.</summary>
    public required Func<CancellationToken, Task<CutoverResult>> CutOverAsync { get; init; }

    /// <summary>What moves with the table after the swap, reporting its phase (null: nothing).</summary>
    public Func<Action<string>, CancellationToken, Task>? AfterSwapAsync { get; init; }
}

/// <summary>The order of a migration's phases, the same on every engine.</summary>
public static class MigrationPhases
{
    /// <summary>
    /// Copy (unless the checkpoint resumed from says it is done), deferred indexes, catch-up, the postponement, verification
    /// (unless skipped), the before-cut-over hooks, the swap, what follows it. The copy is recorded as finished before the indexes are built, so a
    /// run stopped while building them resumes without copying; a checkpoint is saved after the catch-up and just
    /// before the swap. Each phase is reported as it starts.
    /// </summary>
    public static async Task<(VerificationResult? Verification, CutoverResult Cutover)> RunAsync(EnginePhases engine, KeysetCopier copier,
        Checkpointer checkpointer, MigrationCheckpoint? resumed, Task replayFailed, OnlineAlterOptions options, Action<string> report,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(copier);
        ArgumentNullException.ThrowIfNull(checkpointer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(report);
        if (resumed?.CopyFinished != true)
        {
            checkpointer.Track(copier);
            await MigrationSteps.CopyAsync(copier, resumed?.Watermark, resumed?.CopiedAhead ?? [], replayFailed, () => report("copying"), cancellationToken);
        }

        checkpointer.MarkCopyFinished();
        await checkpointer.TrySaveAsync(cancellationToken);
        await engine.BuildDeferredIndexesAsync(() => report("building indexes"), cancellationToken);

        report("catching up");
        await engine.CatchUpAsync(cancellationToken);
        await checkpointer.TrySaveAsync(cancellationToken);

        await MigrationSteps.PostponeCutoverAsync(options.PostponeCutoverFlagFile, report, engine.WhilePostponedAsync, cancellationToken, options.Controls);

        VerificationResult? verification = null;
        if (options.Verify)
        {
            report("verifying");
            verification = await engine.VerifyAsync(cancellationToken);
        }

        if (options.BeforeCutoverAsync is not null)
        {
            await options.BeforeCutoverAsync(cancellationToken);
        }

        report("cutting over");
        await checkpointer.TrySaveAsync(cancellationToken);
        CutoverResult cutover = await engine.CutOverAsync(cancellationToken);
        if (engine.AfterSwapAsync is not null)
        {
            await engine.AfterSwapAsync(report, cancellationToken);
        }

        report("done");
        return (verification, cutover);
    }
}
