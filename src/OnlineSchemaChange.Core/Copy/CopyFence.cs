namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// Keeps the replay from writing while a copy read that may predate its changes is still to land. A chunk copies
/// with a plain (non-locking) read: application writes never wait on the copy. The price is that a chunk can read a
/// row, the application then delete it, and the chunk insert the old version after the replay already applied the
/// delete. So the copy enters the fence before it reads and leaves it after its rows are committed, and the applier,
/// before writing a batch, waits for every copy that was inside when the batch closed. A copy that enters later reads
/// after the batch's changes committed, so it cannot bring back a state older than the batch's.
/// </summary>
/// <remarks>
/// The wait is for every copy inside, not only those whose range holds one of the batch's keys: a batch is the source's
/// state at one moment, and writing part of it next to a stale row could collide on a unique key. A copy lasts about
/// one chunk time, which bounds the wait.
/// </remarks>
public sealed class CopyFence
{
    private readonly object _lock = new();
    private readonly HashSet<TaskCompletionSource> _inside = [];

    public int Inside
    {
        get
        {
            lock (_lock)
            {
                return _inside.Count;
            }
        }
    }

    /// <summary>Call before the copy's read starts; dispose once its rows are committed (or it failed).</summary>
    public IDisposable Enter()
    {
        var left = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _inside.Add(left);
        }

        return new Passage(this, left);
    }

    /// <summary>Completes when every copy inside at the time of the call has left.</summary>
    public Task WaitForCopiesInsideAsync(CancellationToken cancellationToken)
    {
        Task[] inside;
        lock (_lock)
        {
            if (_inside.Count == 0)
            {
                return Task.CompletedTask;
            }

            inside = _inside.Select(t => t.Task).ToArray();
        }

        return Task.WhenAll(inside).WaitAsync(cancellationToken);
    }

    private void Leave(TaskCompletionSource left)
    {
        lock (_lock)
        {
            _inside.Remove(left);
        }

        left.TrySetResult();
    }

    private sealed class Passage(CopyFence fence, TaskCompletionSource left) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                fence.Leave(left);
            }
        }
    }
}
