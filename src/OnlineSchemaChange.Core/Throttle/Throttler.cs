namespace OnlineSchemaChange.Core.Throttle;

/// <summary>
/// Checks its signals on an interval in the background and holds the copy while any asks for a pause. Copy workers
/// call <see cref="WaitUntilOpenAsync"/> before each chunk; the progress display reads <see cref="Reason"/>. Only the
/// copy is held: the applier keeps replaying, since falling behind the stream only makes the lag worse later.
/// </summary>
public sealed class Throttler(IReadOnlyList<IThrottleSignal> signals, TimeSpan interval, TimeProvider time) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _open = NewOpen(completed: true);
    private Task? _loop;

    /// <summary>Why the copy is paused now, or null when it runs.</summary>
    public string? Reason { get; private set; }

    public bool IsThrottled => Reason is not null;

    public void Start() => _loop ??= Task.Run(() => LoopAsync(_stop.Token));

    /// <summary>Checks every signal once, now. The background loop calls it; tests and the first chunk may too.</summary>
    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        string? reason = null;
        foreach (IThrottleSignal signal in signals)
        {
            reason = await signal.CheckAsync(cancellationToken);
            if (reason is not null)
            {
                break;
            }
        }

        SetReason(reason);
    }

    public Task WaitUntilOpenAsync(CancellationToken cancellationToken) => Volatile.Read(ref _open).Task.WaitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            try
            {
                await _loop;
            }
            catch (OperationCanceledException)
            {
                // Stopping is the point.
            }
        }

        _stop.Dispose();
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

    private void SetReason(string? reason)
    {
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
