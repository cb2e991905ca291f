namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>The 19-byte common header. <see cref="NextPosition"/> is the offset just past this event in its file
/// (0 for artificial events the server makes up for the stream).</summary>
public readonly record struct BinlogEventHeader(uint Timestamp, BinlogEventType EventType, uint ServerId, uint EventLength, uint NextPosition, ushort Flags)
{
    public const int Length = 19;
    /// <summary>LOG_EVENT_ARTIFICIAL_F: made up by the server, not at this position in the file.</summary>
    public bool IsArtificial => (Flags & 0x20) != 0;
}

/// <summary>Where an event ends in the binlog, and the GTID of the transaction it belongs to (if any): resuming
/// from the coordinates of a commit event replays nothing of that transaction and loses nothing after it.</summary>
public readonly record struct BinlogCoordinates(string File, long Position, string? Gtid)
{
    public override string ToString() => Gtid is null ? $"{File}:{Position}" : $"{File}:{Position} ({Gtid})";
}

public abstract record BinlogEvent(BinlogEventHeader Header)
{
    /// <summary>Set by the decoder once the event is whole (a clone per event would cost an allocation).</summary>
    public BinlogCoordinates Coordinates { get; internal set; }
}

public sealed record FormatDescriptionEvent(BinlogEventHeader Header, ushort BinlogVersion, string ServerVersion, byte CommonHeaderLength,
    byte[] PostHeaderLengths, ChecksumAlgorithm Checksum) : BinlogEvent(Header)
{
    public byte PostHeaderLength(BinlogEventType type) =>
        (int)type - 1 < PostHeaderLengths.Length && type > 0 ? PostHeaderLengths[(int)type - 1] : (byte)0;
}

public enum ChecksumAlgorithm : byte
{
    None = 0,
    Crc32 = 1,
}

public sealed record RotateEvent(BinlogEventHeader Header, ulong Position, string NextFile) : BinlogEvent(Header);

public sealed record QueryEvent(BinlogEventHeader Header, uint ThreadId, ushort ErrorCode, string Database, string Sql) : BinlogEvent(Header)
{
    /// <summary>BEGIN opens a transaction; COMMIT (non-transactional engines) or ROLLBACK closes one.</summary>
    public bool IsBegin => Sql.Equals("BEGIN", StringComparison.OrdinalIgnoreCase);
    public bool IsTransactionEnd => Sql.Equals("COMMIT", StringComparison.OrdinalIgnoreCase) || Sql.Equals("ROLLBACK", StringComparison.OrdinalIgnoreCase);
    /// <summary>XA START opens the group of a two-phase (XA) transaction, logged when it is prepared.</summary>
    public bool IsXaStart => Sql.StartsWith("XA START", StringComparison.OrdinalIgnoreCase);
    /// <summary>XA COMMIT / XA ROLLBACK of a prepared XA transaction: a group of its own, with no XID after it.</summary>
    public bool IsXaCompletion => Sql.StartsWith("XA COMMIT", StringComparison.OrdinalIgnoreCase) || Sql.StartsWith("XA ROLLBACK", StringComparison.OrdinalIgnoreCase);

    /// <summary>The transaction an XA COMMIT / XA ROLLBACK names, and which of the two it is; null for any other
    /// statement, or one whose XID cannot be read.</summary>
    public XaCompletion? XaCompletion => IsXaCompletion && XaId.TryParseCompletion(Sql, out XaCompletion c) ? c : null;
}

/// <summary>XA_PREPARE_LOG_EVENT: ends the group of an XA transaction. With <see cref="OnePhase"/> (MySQL's
/// XA COMMIT ... ONE PHASE) the transaction is committed; otherwise it is only prepared, and an XA COMMIT or
/// XA ROLLBACK follows later as a group of its own, naming the same <see cref="Xid"/>.</summary>
public sealed record XaPrepareEvent(BinlogEventHeader Header, bool OnePhase, XaId Xid) : BinlogEvent(Header);

/// <summary>Commit of a transaction in a transactional engine.</summary>
public sealed record XidEvent(BinlogEventHeader Header, ulong Xid) : BinlogEvent(Header);

public sealed record TableMapEvent(BinlogEventHeader Header, ulong TableId, string Database, string Table, ColumnType[] ColumnTypes,
    ushort[] ColumnMetadata, byte[] NullableBitmap) : BinlogEvent(Header)
{
    public int ColumnCount => ColumnTypes.Length;
}

public enum RowsEventKind
{
    Insert,
    Update,
    Delete,
}

/// <summary>One changed row. Insert: <see cref="After"/> only; delete: <see cref="Before"/> only; update: both.
/// Arrays have one value per table column; a column absent from the image holds <see cref="RowValues.NotPresent"/>.</summary>
public readonly record struct RowChange(object?[]? Before, object?[]? After);

public static class RowValues
{
    /// <summary>Marks a column not in the row image (binlog_row_image other than FULL).</summary>
    public static readonly object NotPresent = new();
}

public sealed record RowsEvent(BinlogEventHeader Header, RowsEventKind Kind, TableMapEvent Table, TableSchema? Schema, RowChange[] Rows) : BinlogEvent(Header)
{
    public string ColumnName(int index) => Schema is { } s && index < s.Columns.Count ? s.Columns[index].Name : $"@{index + 1}";
}

/// <summary>MySQL GTID (or anonymous GTID): opens a transaction.</summary>
public sealed record MySqlGtidEvent(BinlogEventHeader Header, Guid SourceId, long TransactionNumber, bool IsAnonymous) : BinlogEvent(Header)
{
    public string Gtid => IsAnonymous ? "ANONYMOUS" : $"{SourceId:D}:{TransactionNumber}";
}

/// <summary>MariaDB GTID: opens a transaction (domain-server-sequence). A standalone one has no XID after it.</summary>
public sealed record MariaDbGtidEvent(BinlogEventHeader Header, ulong Sequence, uint Domain, byte Flags) : BinlogEvent(Header)
{
    public bool IsStandalone => (Flags & 0x01) != 0;
    /// <summary>FL_PREPARED_XA: the group of an XA transaction, logged at XA PREPARE (MariaDB writes no XA START
    /// statement; the XID is in this event).</summary>
    public bool IsPreparedXa => (Flags & 0x40) != 0;
    public string Gtid => $"{Domain}-{Header.ServerId}-{Sequence}";
}

public sealed record MariaDbGtidListEvent(BinlogEventHeader Header, IReadOnlyList<string> Gtids) : BinlogEvent(Header);
public sealed record AnnotateRowsEvent(BinlogEventHeader Header, string Sql) : BinlogEvent(Header);
public sealed record BinlogCheckpointEvent(BinlogEventHeader Header, string File) : BinlogEvent(Header);
public sealed record HeartbeatEvent(BinlogEventHeader Header, string File) : BinlogEvent(Header);

/// <summary>Any event we do not interpret; skipped by its length.</summary>
public sealed record SkippedEvent(BinlogEventHeader Header) : BinlogEvent(Header);
