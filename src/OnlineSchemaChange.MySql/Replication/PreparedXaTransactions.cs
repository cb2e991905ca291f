using OnlineSchemaChange.Core;
using OnlineSchemaChange.MySql.Binlog;
using CoreRowChange = OnlineSchemaChange.Core.Changes.RowChange;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>
/// The two-phase XA transactions the feed has read the XA PREPARE of and not yet the XA COMMIT or XA ROLLBACK:
/// their rows of the migrated table, held in memory until the commit delivers them or the rollback drops them, and
/// where each one's group begins in the binlog, which a checkpoint must not pass while its rows are held. Read by the
/// cut-over (no swap while one is pending) and by the start of a run (an XA transaction prepared before the stream
/// began cannot be replayed). Thread-safe: the feed writes, the others read.
/// </summary>
public sealed class PreparedXaTransactions(long maxHeldRows = PreparedXaTransactions.DefaultMaxHeldRows,
    Func<XaId, CancellationToken, Task>? waitUntilCommitted = null)
{
    /// <summary>Rows held across every pending prepared XA transaction before the migration stops.</summary>
    public const long DefaultMaxHeldRows = 200_000;

    private readonly object _lock = new();
    private readonly Dictionary<XaId, Held> _pending = [];
    private long _heldRows;

    public long MaxHeldRows { get; } = maxHeldRows;

    /// <summary>Rows of the migrated table held now, over every prepared transaction.</summary>
    public long HeldRows
    {
        get
        {
            lock (_lock)
            {
                return _heldRows;
            }
        }
    }

    /// <summary>How many prepared XA transactions with rows of the migrated table are pending.</summary>
    public int HeldTransactions
    {
        get
        {
            lock (_lock)
            {
                return _pending.Values.Count(h => h.Rows.Count > 0);
            }
        }
    }

    /// <summary>Where the oldest pending prepared transaction with held rows begins; null when none is held.</summary>
    public MySqlBinlogPosition? OldestHeldStart
    {
        get
        {
            lock (_lock)
            {
                MySqlBinlogPosition? oldest = null;
                foreach (Held h in _pending.Values)
                {
                    if (h.Rows.Count > 0 && (oldest is null || h.Start < oldest))
                    {
                        oldest = h.Start;
                    }
                }

                return oldest;
            }
        }
    }

    /// <summary>The prepared transactions holding rows of the table, for a message; null when there are none.</summary>
    public string? DescribeHeld()
    {
        lock (_lock)
        {
            var held = _pending.Where(p => p.Value.Rows.Count > 0).Select(p => $"{p.Key} ({p.Value.Rows.Count} row changes, prepared at {p.Value.Start})").ToList();
            return held.Count == 0 ? null : string.Join("; ", held);
        }
    }

    /// <summary>Whether the feed has read this transaction's XA PREPARE, with or without rows of the table, and not yet
    /// its completion.</summary>
    public bool SawPrepared(XaId xid)
    {
        lock (_lock)
        {
            return _pending.ContainsKey(xid);
        }
    }

    /// <summary>Stops with a clear error when holding <paramref name="more"/> further rows would pass the cap.</summary>
    public void EnsureRoom(long more, string table)
    {
        if (HeldRows + more <= MaxHeldRows)
        {
            return;
        }

        throw new OscException(
            $"Prepared XA transactions would hold more than {MaxHeldRows:N0} row changes of {table}: until its XA COMMIT, a prepared transaction's rows are kept in memory to be replayed then, and this is the limit.",
            "Commit or roll back the pending XA transactions on the table (XA RECOVER lists them), or make them smaller, then resume with --resume; XA COMMIT ... ONE PHASE and ordinary transactions are not held.");
    }

    /// <summary>An XA PREPARE was read: its transaction's rows of the table (possibly none) wait for its completion.</summary>
    public void Prepared(XaId xid, MySqlBinlogPosition start, List<CoreRowChange> rows)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(rows);
        lock (_lock)
        {
            if (_pending.Remove(xid, out Held? earlier))
            {
                // An XID is unique among pending transactions, so this one was completed where we did not see it.
                _heldRows -= earlier.Rows.Count;
            }

            _pending[xid] = new Held(start, rows);
            _heldRows += rows.Count;
        }
    }

    /// <summary>An XA COMMIT or XA ROLLBACK was read: forgets the transaction and returns its held rows (none when
    /// its PREPARE was not read in this stream or had no rows of the table).</summary>
    public IReadOnlyList<CoreRowChange> Complete(XaId xid)
    {
        lock (_lock)
        {
            if (!_pending.Remove(xid, out Held? held))
            {
                return [];
            }

            _heldRows -= held.Rows.Count;
            return held.Rows;
        }
    }

    /// <summary>Waits until an XA COMMIT read from the binlog is visible to new reads (see docs/correctness.md: the
    /// engine commits an XA COMMIT after writing it to the binlog, outside the binlog's commit order).</summary>
    public Task WaitUntilCommittedAsync(XaId xid, CancellationToken cancellationToken) =>
        waitUntilCommitted?.Invoke(xid, cancellationToken) ?? Task.CompletedTask;

    private sealed record Held(MySqlBinlogPosition Start, List<CoreRowChange> Rows);
}
