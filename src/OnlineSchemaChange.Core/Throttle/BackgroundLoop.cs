namespace OnlineSchemaChange.Core.Throttle;

/// <summary>
/// One background task run until stopped: what the throttler, the checkpointer and the heartbeat each run. Starting
/// twice runs it once; stopping cancels it and waits for it to end, its cancellation being the expected way out.
/// </summary>
public sealed class BackgroundLoop : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public void Start(Func<CancellationToken, Task> loop)
    {
        ArgumentNullException.ThrowIfNull(loop);
        _loop ??= Task.Run(() => loop(_stop.Token));
    }

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
    }
}
