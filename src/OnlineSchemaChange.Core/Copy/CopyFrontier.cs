using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// How far the copy has reached: the end of the last range handed to a copy worker. A change to a key beyond it need
/// not be replayed, because the range that holds the key is read later, by a chunk whose read sees every change the
/// replay had received when the chunk started (docs/correctness.md, "Changes ahead of the copy"). Leaving those
/// changes to the copy spares the applier most of a random write load during the copy, and keeps the shadow free of
/// rows the copy has not reached, so a chunk's plain INSERT meets no key that is already there.
/// </summary>
/// <remarks>
/// Only keys made of integers and decimals are compared: there the server's key order and ours agree exactly. Any other
/// key (text under a collation, binary, dates) is never "ahead", so its changes are replayed as they always were.
/// Only a fresh run uses a frontier: after a resume the shadow may hold rows beyond the resumed watermark, and a change
/// skipped for such a row would be lost.
/// </remarks>
/// <param name="fence">
/// The fence the applier waits on. A chunk enters it before the frontier covers its range, so a change to one of the
/// range's keys that the applier accepts once the frontier covers it waits for the chunk to land: the chunk's insert
/// never meets a row the applier wrote.
/// </param>
public sealed class CopyFrontier(CopyFence? fence = null)
{
    private readonly object _lock = new();
    private RowKey? _end;
    private bool _everything;

    /// <summary>
    /// Called by a copy worker once its chunk may start and before it reads: enters the fence, then covers the range.
    /// Dispose once the chunk's rows are committed.
    /// </summary>
    public IDisposable Enter(KeyRange range)
    {
        IDisposable? passage = fence?.Enter();
        Reach(range);
        return passage ?? NoPassage.Instance;
    }

    /// <summary>Covers the range, with no fence.</summary>
    public void Reach(KeyRange range)
    {
        ArgumentNullException.ThrowIfNull(range);
        lock (_lock)
        {
            if (range.IsLast)
            {
                Volatile.Write(ref _everything, true);
            }
            else if (_end is null || RowKeyComparer.Instance.Compare(range.UpperInclusive, _end) > 0)
            {
                _end = range.UpperInclusive;
            }
        }
    }

    /// <summary>True when no copy worker has yet taken the range that holds <paramref name="key"/>.</summary>
    /// <remarks>Called for every replayed change; once the last range is taken it answers without the lock.</remarks>
    public bool IsAhead(RowKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (Volatile.Read(ref _everything) || !key.IsOrderedExactly)
        {
            return false;
        }

        lock (_lock)
        {
            return !_everything && (_end is null || (_end.IsOrderedExactly && RowKeyComparer.Instance.Compare(key, _end) > 0));
        }
    }

    private sealed class NoPassage : IDisposable
    {
        public static NoPassage Instance { get; } = new();

        public void Dispose()
        {
        }
    }
}
