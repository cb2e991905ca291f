using System.Diagnostics;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Cutover;

/// <summary>
/// Brings the replay close to the source before a cut-over takes its lock, so the drain under the lock has only what
/// a quick round leaves: each round drains to the position at its start, and the changes committed during a round
/// are left for the next; rounds repeat (a few at most) until one is quick. A replay that has not reached even the
/// first round's target within the timeout fails the attempt before the lock is taken, so the application is never
/// held for a backlog; one that keeps up with a steady lag goes on to the lock once a round has been reached.
/// </summary>
public static class CatchUpBeforeLock
{
    /// <summary>A round this short leaves little for the drain under the lock.</summary>
    public static readonly TimeSpan QuickRound = TimeSpan.FromMilliseconds(50);

    private const int MaxRounds = 5;

    public static async Task RunAsync(Func<CancellationToken, Task<ReplicationPosition>> currentPosition,
        Func<ReplicationPosition, CancellationToken, Task> drainTo, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(currentPosition);
        ArgumentNullException.ThrowIfNull(drainTo);
        using var catchUp = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        catchUp.CancelAfter(timeout);
        ReplicationPosition? target = null;
        bool reached = false;
        try
        {
            for (int round = 0; round < MaxRounds; round++)
            {
                long start = Stopwatch.GetTimestamp();
                target = await currentPosition(catchUp.Token);
                await drainTo(target, catchUp.Token);
                reached = true;
                if (Stopwatch.GetElapsedTime(start) < QuickRound)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            if (!reached)
            {
                throw new LockAttemptException($"the replay did not reach {target} within {timeout.TotalSeconds:0.#} s before the lock; the table was not locked");
            }

            // A round was reached: the replay keeps up, a round behind at most, which the drain under the lock bounds.
        }
    }
}
