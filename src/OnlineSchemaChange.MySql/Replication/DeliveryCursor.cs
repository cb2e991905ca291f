using OnlineSchemaChange.MySql.Binlog;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>
/// The client's memory of what it has handed out, so events can stream one by one, a transaction's rows before its
/// commit, while every event still reaches the consumer exactly once across reconnects:
/// <list type="bullet">
/// <item><see cref="LastCommitted"/> moves only at a group's end (a commit, a DDL, an XA prepare, or a rotate between
/// groups): a restart resumes there, never inside a transaction, whose table maps would then be missing.</item>
/// <item>Inside a transaction it remembers the end of the last event handed out. A reconnect resumes at
/// <see cref="LastCommitted"/>, and the server sends the same events again at the same offsets (a binlog file is only
/// ever appended to), so everything up to that offset, and the reconnect's preamble, is dropped.</item>
/// </list>
/// </summary>
public sealed class DeliveryCursor
{
    private readonly TransactionBoundaries _boundaries = new();
    private BinlogCoordinates? _handedOut;
    private BinlogCoordinates? _skipThrough;

    /// <summary>Just after the last group handed out whole (or the start position): where a restart resumes.</summary>
    public BinlogCoordinates? LastCommitted { get; private set; }

    /// <summary>True while events read again after a reconnect are being dropped.</summary>
    public bool Skipping => _skipThrough is not null;

    /// <summary>The stream starts (or restarts) at <paramref name="start"/>, a position between groups when known.</summary>
    public void Start(BinlogCoordinates? start)
    {
        LastCommitted ??= start;
    }

    /// <summary>A new connection streams from <see cref="LastCommitted"/>: drop what was handed out since.</summary>
    public void Reconnecting()
    {
        _boundaries.Reset();
        _skipThrough = _handedOut;
    }

    /// <summary>The event's step, or null when it was handed out already (or is the preamble of a resumed read).</summary>
    public TransactionStep? Accept(BinlogEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        TransactionStep step = _boundaries.Observe(e);
        if (_skipThrough is { } mark)
        {
            if (e is RotateEvent rotate && rotate.NextFile != mark.File)
            {
                // The transaction partly handed out is not in the file any more: the server lost it (a crash
                // truncated the file), so it never committed.
                throw new BinlogStreamException(
                    $"After reconnecting, the binlog moved on to {rotate.NextFile} before reaching {mark}, where the transaction handed out so far continues: " +
                    "the server no longer has it (it stopped before the commit was logged), so changes that never committed were passed on.");
            }

            if (!IsAfter(e, mark))
            {
                return null;
            }

            _skipThrough = null;
        }

        switch (step)
        {
            case TransactionStep.Commit or TransactionStep.Statement or TransactionStep.Prepared:
                LastCommitted = e.Coordinates with { Gtid = e.Coordinates.Gtid ?? LastCommitted?.Gtid };
                _handedOut = null;
                break;
            case TransactionStep.Inside when e.Header.NextPosition != 0:
                _handedOut = e.Coordinates;
                break;
            case TransactionStep.Outside when e is RotateEvent rotate && !_boundaries.InGroup && _handedOut is null:
                LastCommitted = new BinlogCoordinates(rotate.NextFile, (long)rotate.Position, LastCommitted?.Gtid);
                break;
        }

        return step;
    }

    /// <summary>A real event of the file past the mark. Offsets grow within a file and a transaction never spans
    /// two, so this is where the events not yet handed out begin.</summary>
    private static bool IsAfter(BinlogEvent e, BinlogCoordinates mark) =>
        e is not HeartbeatEvent && e.Header.NextPosition != 0 && !e.Header.IsArtificial
        && e.Coordinates.File == mark.File && e.Coordinates.Position > mark.Position;
}
