using System.Data.Common;
using System.Diagnostics;

namespace OnlineSchemaChange.Core.Throttle;

/// <summary>
/// Runs a small write (a heartbeat) every interval and remembers how long the recent ones took. A heartbeat is an
/// autocommitted write like the application's, logged and committed the same way: its latency is what an application
/// write sees, contention with the copy (CPU, WAL or binlog commit queue) included, which makes it the measure to pace
/// the copy by. <paramref name="session"/>, when given, is what the writes share (their connection), disposed with the loop.
/// </summary>
public sealed class TimedWriteLoop(Func<CancellationToken, Task> write, TimeSpan interval, IAsyncDisposable? session = null) : IAsyncDisposable
{
    private const int Remembered = 64;

    private readonly BackgroundLoop _background = new();
    private readonly Queue<(long At, TimeSpan Took)> _recent = new();
    private long _inFlightSince;
    private long _writes;

    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>One timed write.</summary>
    public async Task WriteAsync(CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        Volatile.Write(ref _inFlightSince, started);
        try
        {
            await write(cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _inFlightSince, 0);
        }

        lock (_recent)
        {
            _recent.Enqueue((started, Stopwatch.GetElapsedTime(started)));
            while (_recent.Count > Remembered)
            {
                _recent.Dequeue();
            }
        }

        Interlocked.Increment(ref _writes);
    }

    /// <summary>
    /// The slowest write that started within the window, counting one still in flight by how long it has waited so
    /// far: a write stuck behind the copy must pause it before it completes.
    /// </summary>
    public TimeSpan SlowestRecentWrite(TimeSpan window)
    {
        long now = Stopwatch.GetTimestamp();
        long since = now - (long)(window.TotalSeconds * Stopwatch.Frequency);
        long inFlight = Volatile.Read(ref _inFlightSince);
        TimeSpan slowest = inFlight == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(inFlight, now);
        lock (_recent)
        {
            foreach ((long at, TimeSpan took) in _recent)
            {
                if (at >= since && took > slowest)
                {
                    slowest = took;
                }
            }
        }

        return slowest;
    }

    /// <summary>Pauses the copy while the slowest write of the last half second took longer than the limit.</summary>
    public ThresholdSignal LatencySignal(TimeSpan limit) =>
        new("write latency", limit.TotalMilliseconds, _ => ValueTask.FromResult(SlowestRecentWrite(TimeSpan.FromMilliseconds(500)).TotalMilliseconds), " ms");

    public void Start() => _background.Start(LoopAsync);

    public async ValueTask DisposeAsync()
    {
        await _background.DisposeAsync();
        if (session is not null)
        {
            await session.DisposeAsync();
        }
    }

    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await WriteAsync(cancellationToken);
            }
            catch (DbException)
            {
                // A missed beat shows up as lag on the replicas, which throttles: the safe direction.
            }

            await Task.Delay(interval, cancellationToken);
        }
    }
}
