using System.Diagnostics;

namespace OnlineSchemaChange.LocalServers;

/// <summary>Retries a readiness check until it holds, the server dies, or time runs out.</summary>
internal static class Poll
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    /// <param name="condition">Returns true when ready; an exception counts as "not yet" and is reported if time runs out.</param>
    /// <param name="serverEnded">Completes, saying how, if the server ends or is being stopped: no point waiting any longer.</param>
    public static async Task UntilAsync(
        string what,
        Func<CancellationToken, Task<bool>> condition,
        TimeSpan timeout,
        Task<string>? serverEnded,
        CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        Exception? lastError = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (serverEnded is { IsCompleted: true })
            {
                throw new LocalServerException($"the server {await serverEnded} while waiting until {what}.");
            }

            try
            {
                if (await condition(cancellationToken))
                {
                    return;
                }

                lastError = null;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                lastError = e;
            }

            if (clock.Elapsed > timeout)
            {
                var detail = lastError is null ? "" : $" Last error: {lastError.Message}";
                throw new LocalServerException($"timed out after {timeout.TotalSeconds:0}s waiting until {what}.{detail}");
            }

            await Task.Delay(Interval, cancellationToken);
        }
    }
}
