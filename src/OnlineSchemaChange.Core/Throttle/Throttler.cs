namespace OnlineSchemaChange.Core.Throttle;

/// <summary>
/// Checks its signals on an interval in the background and holds the copy while any asks for a pause. Copy workers
/// call <see cref="WaitUntilOpenAsync"/> before each chunk; the progress display reads <see cref="Reason"/>. Only the
/// copy is held: the applier keeps replaying, since falling behind the stream only makes the lag worse later.
/// Abort signals (gh-ost's --critical-load) do not pause: they fail every waiter, so the migration stops cleanly.
/// </summary>
public sealed class Throttler(IReadOnlyList<IThrottleSignal> signals, TimeSpan interval, TimeProvider time, IReadOnlyList<IThrottleSignal>? abortSignals = null)
    : IAsyncDisposable
{
    private readonly BackgroundLoop _background = new();
    private TaskCompletionSource _open = NewOpen(completed: true);

    /// <summary>Why the copy is paused now, or null when it runs.</summary>
    public string? Reason { get; private set; }

    public bool IsThrottled => Reason is not null;

    /// <summary>The signals among <c>signals</c> that measure replica lag in milliseconds, for <see cref="ReplicaLagMillis"/>.</summary>
    public IReadOnlyList<ThresholdSignal> ReplicaLagSignals { get; init; } = [];

    /// <summary>
    /// The largest replica lag the last check measured, in milliseconds: infinity while a replica has not seen the
    /// heartbeat yet; null when no replica is watched, or when none could be measured.
    /// </summary>
    public double? ReplicaLagMillis => ReplicaLagSignals.Select(s => s.LastValue).Where(v => v is not null).DefaultIfEmpty(null).Max();

    public void Start() => _background.Start(LoopAsync);

    /// <summary>Checks every signal once, now. The background loop calls it; tests and the first chunk may too.</summary>
    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        foreach (IThrottleSignal signal in abortSignals ?? [])
        {
            if (await signal.CheckAsync(cancellationToken) is { } critical)
            {
                Abort(critical);
                return;
            }
        }

        // Every signal is measured each round, not only up to the first that asks for a pause, so the figures shown
        // (replica lag) stay current while another signal holds the copy; the first reason is the one reported.
        string? reason = null;
        foreach (IThrottleSignal signal in signals)
        {
            string? asked = await signal.CheckAsync(cancellationToken);
            reason ??= asked;
        }

        SetReason(reason);
    }

    public Task WaitUntilOpenAsync(CancellationToken cancellationToken) => Volatile.Read(ref _open).Task.WaitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _background.DisposeAsync();
        Volatile.Read(ref _open).TrySetResult();
    }

    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            await CheckAsync(cancellationToken);
            await Task.Delay(interval, time, cancellationToken);
        }
    }

    /// <summary>Why the migration was aborted, once an abort signal fired.</summary>
    public string? AbortReason { get; private set; }

    private void Abort(string reason)
    {
        AbortReason = reason;
        Reason = "aborting: " + reason;
        var error = new OscException($"Aborted: {reason}.", "The original table is untouched; find the cause, then run again (or --resume).");
        TaskCompletionSource open = Volatile.Read(ref _open);
        if (!open.TrySetException(error))
        {
            var failed = NewOpen(completed: false);
            failed.SetException(error);
            Volatile.Write(ref _open, failed);
        }
    }

    private void SetReason(string? reason)
    {
        if (AbortReason is not null)
        {
            return;
        }

        Reason = reason;
        TaskCompletionSource open = Volatile.Read(ref _open);
        if (reason is null)
        {
            open.TrySetResult();
        }
        else if (open.Task.IsCompleted)
        {
            Volatile.Write(ref _open, NewOpen(completed: false));
        }
    }

    private static TaskCompletionSource NewOpen(bool completed)
    {
        var source = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (completed)
        {
            source.SetResult();
        }

        return source;
    }
}
