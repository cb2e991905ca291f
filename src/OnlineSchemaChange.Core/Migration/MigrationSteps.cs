using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.Core.Verify;

namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// The steps of an online ALTER that both engines run the same way around their own replay, copy source and swap:
/// the throttler built from the options, the copy watched against the replay, the postponed cut-over, and the error
/// of a run that stops before the swap with its work kept for --resume.
/// </summary>
public static class MigrationSteps
{
    /// <summary>How often the throttler asks its signals.</summary>
    public static readonly TimeSpan ThrottleInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>How long the last checkpoint of a stopping run may take before the previous one is left to stand.</summary>
    public static readonly TimeSpan FinalCheckpointTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The throttler the options ask for: the heartbeat's write latency (--max-write-latency-millis, when there is a
    /// heartbeat), the flag file, the engine's replica-lag signals, --max-load; --critical-load aborts.
    /// </summary>
    /// <param name="load">The engine's load signals for a spec such as "Threads_running=50", given the option's name.</param>
    public static Throttler BuildThrottler(OnlineAlterOptions options, TimedWriteLoop? heartbeat, IEnumerable<ThresholdSignal> replicaLag,
        Func<string, string, IReadOnlyList<IThrottleSignal>> load)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(replicaLag);
        ArgumentNullException.ThrowIfNull(load);
        var signals = new List<IThrottleSignal>();
        if (heartbeat is not null && options.MaxWriteLatency is { } latency)
        {
            signals.Add(heartbeat.LatencySignal(latency));
        }

        if (options.ThrottleFlagFile is not null)
        {
            signals.Add(new FlagFileSignal(options.ThrottleFlagFile));
        }

        ThresholdSignal[] lag = [.. replicaLag];
        signals.AddRange(lag);
        // The load limits are replaceable groups and the operator has a brake of their own: the control socket acts
        // on them through the run's controls (a run without a socket gets controls nobody changes).
        MigrationControls controls = options.Controls ?? new MigrationControls(options);
        var loadSet = new ThrottleSignalSet("max-load", options.MaxLoad is null ? [] : load(options.MaxLoad, "--max-load"));
        var criticalSet = new ThrottleSignalSet("critical-load", options.CriticalLoad is null ? [] : load(options.CriticalLoad, "--critical-load"));
        signals.Add(controls.Throttle);
        signals.Add(loadSet);
        controls.Bind(lag, loadSet, criticalSet, load);
        return new Throttler(signals, ThrottleInterval, TimeProvider.System, [criticalSet]) { ReplicaLagSignals = lag };
    }

    /// <summary>
    /// Runs the copy to its end, reporting once a second. A replay that fails meanwhile stops the copy, whose chunks
    /// would otherwise go on filling a shadow nothing keeps current, and its error is what this throws.
    /// </summary>
    public static async Task CopyAsync(KeysetCopier copier, RowKey? resumeAfter, IReadOnlyList<CopiedRange> copiedAhead, Task replayFailed, Action report,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(copier);
        ArgumentNullException.ThrowIfNull(replayFailed);
        ArgumentNullException.ThrowIfNull(report);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var ticker = new PeriodicTimer(TimeSpan.FromSeconds(1));
        report();
        Task copy = copier.RunAsync(resumeAfter, copiedAhead, stop.Token);
        while (!copy.IsCompleted)
        {
            // Not cancellable: a cancelled tick completes at once, and the loop would spin until the copy stops.
            Task tick = ticker.WaitForNextTickAsync(CancellationToken.None).AsTask();
            if (await Task.WhenAny(copy, tick, replayFailed) == replayFailed)
            {
                await stop.CancelAsync();
                await copy.ContinueWith(_ => { }, TaskScheduler.Default);
                await replayFailed;
            }

            report();
        }

        await copy;
    }

    /// <summary>
    /// Holds the cut-over while the --postpone-cut-over-flag-file exists or the operator postponed it, reporting once a second;
    /// <paramref name="meanwhile"/>, when given, runs each second (PostgreSQL drains its replay, so the slot moves on).
    /// </summary>
    public static async Task PostponeCutoverAsync(string? flagFile, Action<string> report, Func<CancellationToken, Task>? meanwhile, CancellationToken cancellationToken,
        MigrationControls? controls = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        while ((flagFile is not null && File.Exists(flagFile) ? $"postponed while {flagFile} exists"
                   : controls?.CutoverPostponed == true ? "postponed by the operator (control socket)"
                   : null) is { } postponed)
        {
            report(postponed);
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            if (meanwhile is not null)
            {
                await meanwhile(cancellationToken);
            }
        }
    }

    /// <summary>
    /// The error of a run stopped before the swap that keeps its work: it saves a last checkpoint first (replay and copy
    /// are stopped by then, so it records everything they finished; if it times out, the previous one stands and
    /// resuming from it replays a little more), then says why the run stopped and what is kept.
    /// </summary>
    /// <param name="stopped">What stopped the run.</param>
    /// <param name="cancelled">Whether the operator stopped it (Ctrl-C, SIGTERM).</param>
    /// <param name="original">The table being altered, which is untouched.</param>
    /// <param name="kept">Every object kept for --resume, as the operator should read it.</param>
    /// <param name="afterMessage">A sentence added to the message, such as what a kept object costs meanwhile.</param>
    public static async Task<MigrationKeptException> KeepBeforeSwapAsync(Checkpointer? checkpointer, Exception stopped, bool cancelled, string original,
        IReadOnlyList<string> kept, string? afterMessage = null)
    {
        ArgumentNullException.ThrowIfNull(stopped);
        if (checkpointer is not null)
        {
            using var final = new CancellationTokenSource(FinalCheckpointTimeout);
            try
            {
                await checkpointer.TrySaveAsync(final.Token);
            }
            catch (OperationCanceledException)
            {
                // Timed out: the previous checkpoint stands.
            }
        }

        string message = cancelled ? $"Stopped before the swap; {original} is untouched."
            : stopped is OscException ? stopped.Message : $"Unexpected failure: {stopped.Message}";
        if (afterMessage is not null)
        {
            message += " " + afterMessage;
        }

        string? hint = cancelled ? null : stopped is OscException known ? known.Hint : stopped.ToString();
        return new MigrationKeptException(message, hint, cancelled, kept, stopped);
    }

    /// <summary>
    /// Failures after which a resume could only fail the same way (verification still differs, the table was changed
    /// by someone else, a row does not fit the new definition): nothing is kept for one.
    /// </summary>
    public static bool EndsTheMigration(Exception e)
    {
        for (Exception? cause = e; cause is not null; cause = cause.InnerException)
        {
            if (cause is VerificationFailedException or TableChangedException or DataDoesNotFitException)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The error for a run whose cleanup failed (the server still away): thrown from a finally block, it replaces the
    /// failure that brought the run there, so it begins with that one's message (<paramref name="explained"/>) and
    /// holds it inside, and names what is left and how to remove it.
    /// </summary>
    /// <param name="failure">What stopped the run, or null when it had succeeded.</param>
    /// <param name="explained">The failure's message as the operator should read it (a lost connection explained).</param>
    /// <param name="cleanupError">Why the cleanup failed.</param>
    /// <param name="left">What osc created and could not remove, as the operator should read it.</param>
    /// <param name="swapped">Whether the tables were swapped before.</param>
    /// <param name="original">The table being altered.</param>
    /// <param name="why">Added to the fix: what a leftover costs meanwhile, if anything.</param>
    public static OscException CleanupFailed(Exception? failure, string? explained, Exception cleanupError, string left, bool swapped, string original, string? why = null)
    {
        ArgumentNullException.ThrowIfNull(cleanupError);
        string before = failure is not null ? $"{explained ?? failure.Message} " : swapped ? "The swap completed; " : "";
        return new OscException($"{before}osc could not remove what it created: {left} ({cleanupError.Message.TrimEnd('.')}).",
            $"Once the server answers, remove it with `osc cleanup <connection> --table {original}`{(why is null ? "" : ": " + why)}" +
            (swapped ? "." : $"; {original} itself is untouched."), failure ?? cleanupError);
    }
}
