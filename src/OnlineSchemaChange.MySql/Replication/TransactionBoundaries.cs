using OnlineSchemaChange.MySql.Binlog;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>What an event does to the transaction groups of the binlog.</summary>
public enum TransactionStep
{
    /// <summary>Belongs to no group: format description, rotate, heartbeat, GTID list, binlog checkpoint.</summary>
    Outside,

    /// <summary>Opens a group (GTID, BEGIN, XA START) or belongs to an open one (table map, rows, SAVEPOINT).</summary>
    Inside,

    /// <summary>Commits the open transaction: XID, COMMIT, ROLLBACK (non-transactional changes stay), XA COMMIT,
    /// XA ROLLBACK, a one-phase XA prepare. Resuming just after it repeats and loses nothing.</summary>
    Commit,

    /// <summary>A statement that is a transaction of its own (DDL): a commit after which table definitions may differ.</summary>
    Statement,

    /// <summary>XA PREPARE of a two-phase XA transaction: its group is over, so resuming after it is sound, but its
    /// changes are not committed. XA COMMIT or XA ROLLBACK comes later as a group of its own.</summary>
    Prepared,
}

/// <summary>
/// Follows the transaction groups of a binlog stream, event by event, so that consumers can stream a transaction's
/// rows as they arrive yet only treat its end as a point to record or resume from. MySQL opens a group with a GTID
/// (or anonymous GTID) event then BEGIN, or logs a DDL statement alone after the GTID; MariaDB's GTID event says
/// itself whether a transaction follows (not standalone) or a single statement. XA transactions are logged at
/// XA PREPARE (MySQL: XA START ... XA END, then XA_PREPARE_LOG; MariaDB: a GTID flagged as a prepared XA instead of
/// XA START) and completed by a later XA COMMIT/ROLLBACK statement.
/// </summary>
public sealed class TransactionBoundaries
{
    /// <summary>A GTID has been read and its group has not ended yet.</summary>
    public bool InGroup { get; private set; }

    /// <summary>Inside a multi-event transaction (BEGIN, XA START, or a MariaDB GTID that is not standalone).</summary>
    public bool InTransaction { get; private set; }

    /// <summary>The open group is an XA transaction's (XA START, or MariaDB's prepared-XA GTID): it may end prepared,
    /// not committed.</summary>
    public bool InXa { get; private set; }

    /// <summary>Where the open group's first event begins (its GTID, or BEGIN / XA START without one): a position
    /// between groups from which a restart reads the whole group again. Null outside a group, or when unknown.</summary>
    public BinlogCoordinates? GroupStart { get; private set; }

    public TransactionStep Observe(BinlogEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        switch (e)
        {
            case MySqlGtidEvent:
                // A group that never ended (none should) is over once the next one begins.
                Reset();
                Open(e);
                return TransactionStep.Inside;
            case MariaDbGtidEvent gtid:
                Reset();
                Open(e);
                InTransaction = !gtid.IsStandalone;
                InXa = gtid.IsPreparedXa;
                return TransactionStep.Inside;
            case QueryEvent { IsBegin: true }:
                Open(e);
                InTransaction = true;
                return TransactionStep.Inside;
            case QueryEvent { IsXaStart: true }:
                Open(e);
                InTransaction = true;
                InXa = true;
                return TransactionStep.Inside;
            case QueryEvent { IsTransactionEnd: true } or QueryEvent { IsXaCompletion: true }:
                Reset();
                return TransactionStep.Commit;
            case QueryEvent when InTransaction:
                return TransactionStep.Inside; // SAVEPOINT, XA END, ...
            case QueryEvent:
                Reset();
                return TransactionStep.Statement;
            case XidEvent:
                Reset();
                return TransactionStep.Commit;
            case XaPrepareEvent prepare:
                Reset();
                return prepare.OnePhase ? TransactionStep.Commit : TransactionStep.Prepared;
            case FormatDescriptionEvent when InGroup || InTransaction:
                // The server only switches files between groups, so a new file's first event inside one means the
                // server stopped (crashed) before logging the commit: those changes never committed.
                throw new BinlogStreamException(
                    $"The binlog moved to a new file at {e.Coordinates} inside a transaction whose commit was never logged (the server stopped mid-write?); " +
                    "its changes did not commit but were already passed on. Start again from a position after the restart.");
            case FormatDescriptionEvent or RotateEvent or HeartbeatEvent or MariaDbGtidListEvent or BinlogCheckpointEvent:
                return TransactionStep.Outside;
            default:
                return InGroup || InTransaction ? TransactionStep.Inside : TransactionStep.Outside;
        }
    }

    public void Reset()
    {
        InGroup = false;
        InTransaction = false;
        InXa = false;
        GroupStart = null;
    }

    private void Open(BinlogEvent first)
    {
        if (!InGroup && !InTransaction)
        {
            GroupStart = first.Header.NextPosition == 0 || first.Header.IsArtificial
                ? null
                : first.Coordinates with { Position = first.Coordinates.Position - first.Header.EventLength };
        }

        InGroup = true;
    }
}

/// <summary>The stream cannot go on without passing on a wrong change; retrying will not help.</summary>
public sealed class BinlogStreamException : Exception
{
    public BinlogStreamException(string message) : base(message) { }
    public BinlogStreamException(string message, Exception inner) : base(message, inner) { }
    public BinlogStreamException() { }
}
