using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>Turns raw events (header, body, optional CRC32 trailer) into <see cref="BinlogEvent"/>s. It keeps the
/// state the stream implies: the format description, the current file, the open transaction's GTID and the one
/// table-map cache. Pure: no I/O; column facts come from an <see cref="ITableSchemaProvider"/>.</summary>
public sealed class BinlogEventDecoder
{
    private readonly Dictionary<ulong, TableMapEvent> _tableMaps = [];
    private readonly ITableSchemaProvider? _schemas;
    private FormatDescriptionEvent? _format;
    private bool _inTransaction;
    private readonly List<RowChange> _rowScratch = [];

    public BinlogEventDecoder(ITableSchemaProvider? schemas = null, string currentFile = "")
    {
        _schemas = schemas;
        CurrentFile = currentFile;
    }

    /// <summary>Checksum expected on events before the first FORMAT_DESCRIPTION (the negotiated one, in a stream).</summary>
    public ChecksumAlgorithm Checksum { get; set; }
    public bool VerifyChecksums { get; set; } = true;
    public string CurrentFile { get; private set; }
    /// <summary>GTID of the transaction being read, until its commit.</summary>
    public string? CurrentGtid { get; private set; }
    public IReadOnlyDictionary<ulong, TableMapEvent> TableMaps => _tableMaps;
    /// <summary>Rows of tables this rejects are skipped by length, not decoded.</summary>
    public Func<TableMapEvent, bool>? TableFilter { get; set; }

    /// <summary>Forgets table maps, e.g. after a reconnect (the server sends them again before their rows).</summary>
    public void ResetTableMaps() => _tableMaps.Clear();

    public BinlogEvent Decode(ReadOnlySpan<byte> data)
    {
        BinlogEventHeader header = default;
        try
        {
            var reader = new PacketReader(data);
            header = new BinlogEventHeader(reader.ReadUInt32(), (BinlogEventType)reader.ReadByte(), reader.ReadUInt32(), reader.ReadUInt32(),
                reader.ReadUInt32(), reader.ReadUInt16());
            if (header.EventLength != data.Length)
            {
                throw new MySqlProtocolException($"Event length field says {header.EventLength} bytes, got {data.Length}.");
            }

            var checksum = header.EventType == BinlogEventType.FormatDescription ? FormatDescriptionChecksum(data) : Checksum;
            var body = data[BinlogEventHeader.Length..];
            if (checksum == ChecksumAlgorithm.Crc32)
            {
                if (body.Length < 4)
                {
                    throw new MySqlProtocolException("Event too short for its CRC32 trailer.");
                }

                if (VerifyChecksums)
                {
                    var expected = BinaryPrimitives.ReadUInt32LittleEndian(data[^4..]);
                    var actual = ComputeCrc(header, data[..^4]);
                    if (expected != actual)
                    {
                        throw new MySqlProtocolException($"CRC32 mismatch: event says {expected:X8}, bytes give {actual:X8}.");
                    }
                }

                body = body[..^4];
            }

            var decoded = DecodeBody(header, body, checksum);
            if (decoded is MySqlGtidEvent or MariaDbGtidEvent)
            {
                AfterDecode(decoded);
            }

            var coordinates = new BinlogCoordinates(CurrentFile, header.NextPosition, CurrentGtid);
            if (decoded is not (MySqlGtidEvent or MariaDbGtidEvent))
            {
                AfterDecode(decoded);
            }

            decoded.Coordinates = coordinates;
            return decoded;
        }
        catch (Exception e) when (e is MySqlProtocolException or ArgumentException or InvalidDataException or OverflowException or IndexOutOfRangeException or FormatException or DecoderFallbackException or EndOfStreamException)
        {
            throw new BinlogDecodeException($"Cannot decode {header.EventType} event at {CurrentFile}:{StartOf(header, data.Length)}: {e.Message}", e);
        }
    }

    /// <summary>The server checksums a FORMAT_DESCRIPTION before it marks the file in use (flag 0x1, cleared again
    /// on close), so the flag is masked out for the check, as the server itself does.</summary>
    private static uint ComputeCrc(BinlogEventHeader header, ReadOnlySpan<byte> covered)
    {
        const int FlagsOffset = 17;
        if (header.EventType != BinlogEventType.FormatDescription || (header.Flags & 0x1) == 0)
        {
            return Crc32.HashToUInt32(covered);
        }

        var crc = new Crc32();
        crc.Append(covered[..FlagsOffset]);
        crc.Append([(byte)(covered[FlagsOffset] & 0xFE)]);
        crc.Append(covered[(FlagsOffset + 1)..]);
        return crc.GetCurrentHashAsUInt32();
    }

    private static long StartOf(BinlogEventHeader header, int length) => header.NextPosition == 0 ? 0 : (long)header.NextPosition - length;

    private static ChecksumAlgorithm FormatDescriptionChecksum(ReadOnlySpan<byte> data)
    {
        // Since MySQL 5.6.1 the body ends with the algorithm byte and a 4-byte checksum field (zero when off).
        if (data.Length < BinlogEventHeader.Length + 57 + 5)
        {
            return ChecksumAlgorithm.None;
        }

        var algorithm = data[^5];
        return algorithm switch
        {
            0 => ChecksumAlgorithm.None,
            1 => ChecksumAlgorithm.Crc32,
            _ => throw new MySqlProtocolException($"Unknown checksum algorithm {algorithm}."),
        };
    }

    private void AfterDecode(BinlogEvent decoded)
    {
        switch (decoded)
        {
            case RotateEvent rotate:
                CurrentFile = rotate.NextFile;
                break;
            case MySqlGtidEvent gtid:
                CurrentGtid = gtid.Gtid;
                _inTransaction = false; // BEGIN follows, or a statement on its own
                break;
            case MariaDbGtidEvent gtid:
                CurrentGtid = gtid.Gtid;
                _inTransaction = !gtid.IsStandalone; // MariaDB writes no BEGIN: the GTID opens the transaction
                break;
            case QueryEvent { IsBegin: true } or QueryEvent { IsXaStart: true }:
                _inTransaction = true;
                break;
            case XidEvent:
            case XaPrepareEvent:
            case QueryEvent { IsTransactionEnd: true } or QueryEvent { IsXaCompletion: true }:
                CurrentGtid = null;
                _inTransaction = false;
                break;
            case QueryEvent when !_inTransaction:
                CurrentGtid = null; // a statement on its own (DDL) is its own transaction
                break;
        }
    }

    private BinlogEvent DecodeBody(BinlogEventHeader header, ReadOnlySpan<byte> body, ChecksumAlgorithm checksum)
    {
        var reader = new PacketReader(body);
        switch (header.EventType)
        {
            case BinlogEventType.FormatDescription:
                return DecodeFormatDescription(header, body, checksum);
            case BinlogEventType.Rotate:
                return new RotateEvent(header, reader.ReadUInt64(), reader.ReadStringToEnd());
            case BinlogEventType.Query:
                return DecodeQuery(header, ref reader, compressed: false);
            case BinlogEventType.MariaDbQueryCompressed:
                return DecodeQuery(header, ref reader, compressed: true);
            case BinlogEventType.Xid:
                return new XidEvent(header, reader.ReadUInt64());
            case BinlogEventType.TableMap:
                return DecodeTableMap(header, ref reader);
            case BinlogEventType.WriteRowsV1 or BinlogEventType.UpdateRowsV1 or BinlogEventType.DeleteRowsV1
                or BinlogEventType.WriteRowsV2 or BinlogEventType.UpdateRowsV2 or BinlogEventType.DeleteRowsV2
                or BinlogEventType.MariaDbWriteRowsCompressedV1 or BinlogEventType.MariaDbUpdateRowsCompressedV1 or BinlogEventType.MariaDbDeleteRowsCompressedV1
                or BinlogEventType.MariaDbWriteRowsCompressed or BinlogEventType.MariaDbUpdateRowsCompressed or BinlogEventType.MariaDbDeleteRowsCompressed:
                return DecodeRows(header, ref reader) is { } rows ? rows : new SkippedEvent(header);
            case BinlogEventType.Gtid or BinlogEventType.AnonymousGtid:
                {
                    reader.Skip(1);
                    var sid = new Guid(reader.ReadBytes(16), bigEndian: true);
                    var gno = (long)reader.ReadUInt64();
                    return new MySqlGtidEvent(header, sid, gno, header.EventType == BinlogEventType.AnonymousGtid);
                }

            case BinlogEventType.MariaDbGtid:
                {
                    var sequence = reader.ReadUInt64();
                    var domain = reader.ReadUInt32();
                    return new MariaDbGtidEvent(header, sequence, domain, reader.ReadByte());
                }

            case BinlogEventType.MariaDbGtidList:
                {
                    // The top 4 bits of the count are flags.
                    var count = reader.ReadUInt32() & 0x0FFFFFFF;
                    var gtids = new List<string>();
                    for (var i = 0; i < count; i++)
                    {
                        gtids.Add($"{reader.ReadUInt32()}-{reader.ReadUInt32()}-{reader.ReadUInt64()}");
                    }

                    return new MariaDbGtidListEvent(header, gtids);
                }

            case BinlogEventType.MariaDbAnnotateRows:
                return new AnnotateRowsEvent(header, reader.ReadStringToEnd());
            case BinlogEventType.MariaDbBinlogCheckpoint:
                {
                    var length = (int)reader.ReadUInt32();
                    return new BinlogCheckpointEvent(header, Encoding.UTF8.GetString(reader.ReadBytes(length)));
                }

            case BinlogEventType.Heartbeat:
                return new HeartbeatEvent(header, reader.ReadStringToEnd());
            case BinlogEventType.XaPrepare:
                {
                    // u8 one phase, u32 formatID, u32 gtrid length, u32 bqual length, then gtrid and bqual (MariaDB
                    // log_event_server.cc XA_prepare_log_event::write; MySQL control_events.h XA_prepare_event).
                    bool onePhase = reader.ReadByte() != 0;
                    long format = (int)reader.ReadUInt32(); // -1 is the null XID
                    uint gtridLength = reader.ReadUInt32();
                    uint bqualLength = reader.ReadUInt32();
                    if (gtridLength > 64 || bqualLength > 64 || gtridLength + bqualLength > reader.Remaining)
                    {
                        throw new MySqlProtocolException($"XA_PREPARE_LOG with gtrid length {gtridLength} and bqual length {bqualLength} in {reader.Remaining} bytes.");
                    }

                    var gtrid = reader.ReadBytes((int)gtridLength);
                    var bqual = reader.ReadBytes((int)bqualLength);
                    return new XaPrepareEvent(header, onePhase, XaId.FromBytes(format, gtrid, bqual));
                }
            case BinlogEventType.TransactionPayload:
                throw new MySqlProtocolException("TRANSACTION_PAYLOAD (zstd-compressed transaction) is not supported: set binlog_transaction_compression=OFF on the server.");
            case BinlogEventType.PartialUpdateRows:
                throw new MySqlProtocolException("PARTIAL_UPDATE_ROWS (binlog_row_value_options=PARTIAL_JSON) is not supported: the row image must be FULL.");
            default:
                return new SkippedEvent(header);
        }
    }

    private FormatDescriptionEvent DecodeFormatDescription(BinlogEventHeader header, ReadOnlySpan<byte> body, ChecksumAlgorithm checksum)
    {
        var reader = new PacketReader(body);
        var version = reader.ReadUInt16();
        var serverVersion = Encoding.ASCII.GetString(reader.ReadBytes(50)).TrimEnd('\0');
        reader.Skip(4);
        var headerLength = reader.ReadByte();
        if (headerLength != BinlogEventHeader.Length)
        {
            throw new MySqlProtocolException($"Unsupported common header length {headerLength}.");
        }

        // The algorithm byte follows the post-header lengths; the CRC trailer has been cut off already when on.
        var rest = reader.ReadToEnd();
        var lengths = checksum == ChecksumAlgorithm.Crc32 ? rest[..^1] : rest[..^5];
        var format = new FormatDescriptionEvent(header, version, serverVersion, headerLength, lengths.ToArray(), checksum);
        _format = format;
        Checksum = checksum;
        return format;
    }

    private QueryEvent DecodeQuery(BinlogEventHeader header, ref PacketReader reader, bool compressed)
    {
        var threadId = reader.ReadUInt32();
        reader.Skip(4); // execution time
        var databaseLength = reader.ReadByte();
        var errorCode = reader.ReadUInt16();
        var statusLength = reader.ReadUInt16();
        var postHeader = _format?.PostHeaderLength(header.EventType) ?? 13;
        reader.Skip(Math.Max(0, postHeader - 13));
        reader.Skip(statusLength);
        var database = Encoding.UTF8.GetString(reader.ReadBytes(databaseLength));
        reader.Skip(1);
        var sqlBytes = reader.ReadToEnd();
        var sql = compressed ? Encoding.UTF8.GetString(Decompress(sqlBytes)) : Encoding.UTF8.GetString(sqlBytes);
        return new QueryEvent(header, threadId, errorCode, database, sql);
    }

    private ulong ReadTableId(BinlogEventHeader header, ref PacketReader reader) =>
        _format?.PostHeaderLength(header.EventType) == 6 ? reader.ReadUInt32() : reader.ReadUInt48();

    private TableMapEvent DecodeTableMap(BinlogEventHeader header, ref PacketReader reader)
    {
        var tableId = ReadTableId(header, ref reader);
        reader.Skip(2); // flags
        var database = Encoding.UTF8.GetString(reader.ReadBytes(reader.ReadByte()));
        reader.Skip(1);
        var table = Encoding.UTF8.GetString(reader.ReadBytes(reader.ReadByte()));
        reader.Skip(1);
        var columnCount = reader.ReadLengthEncodedLength();
        if (columnCount > reader.Remaining)
        {
            throw new MySqlProtocolException($"TABLE_MAP claims {columnCount} columns in {reader.Remaining} bytes.");
        }

        var types = new ColumnType[columnCount];
        reader.ReadBytes(columnCount).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(types.AsSpan()));
        var metadataReader = new PacketReader(reader.ReadLengthEncodedBytes());
        var metadata = new ushort[columnCount];
        for (var i = 0; i < columnCount; i++)
        {
            metadata[i] = ColumnMetadata.Read(types[i], ref metadataReader);
        }

        var nullable = reader.ReadBytes((columnCount + 7) / 8).ToArray();
        // Optional metadata (binlog_row_metadata) follows; names and signedness come from information_schema instead.
        var map = new TableMapEvent(header, tableId, database, table, types, metadata, nullable);
        _tableMaps[tableId] = map;
        return map;
    }

    private RowsEvent? DecodeRows(BinlogEventHeader header, ref PacketReader reader)
    {
        var type = header.EventType;
        var kind = type switch
        {
            BinlogEventType.WriteRowsV1 or BinlogEventType.WriteRowsV2 or BinlogEventType.MariaDbWriteRowsCompressedV1 or BinlogEventType.MariaDbWriteRowsCompressed => RowsEventKind.Insert,
            BinlogEventType.UpdateRowsV1 or BinlogEventType.UpdateRowsV2 or BinlogEventType.MariaDbUpdateRowsCompressedV1 or BinlogEventType.MariaDbUpdateRowsCompressed => RowsEventKind.Update,
            _ => RowsEventKind.Delete,
        };
        var tableId = ReadTableId(header, ref reader);
        reader.Skip(2); // flags
        var isV2 = type is BinlogEventType.WriteRowsV2 or BinlogEventType.UpdateRowsV2 or BinlogEventType.DeleteRowsV2
            or BinlogEventType.MariaDbWriteRowsCompressed or BinlogEventType.MariaDbUpdateRowsCompressed or BinlogEventType.MariaDbDeleteRowsCompressed;
        if (isV2)
        {
            var extraLength = reader.ReadUInt16(); // counts its own two bytes
            reader.Skip(Math.Max(0, extraLength - 2));
        }

        if (!_tableMaps.TryGetValue(tableId, out var map))
        {
            throw new MySqlProtocolException($"Rows event for table id {tableId} without a preceding TABLE_MAP.");
        }

        if (TableFilter is { } filter && !filter(map))
        {
            return null;
        }

        var isCompressed = type is >= BinlogEventType.MariaDbWriteRowsCompressedV1 and <= BinlogEventType.MariaDbDeleteRowsCompressed;
        var schema = _schemas?.Find(map.Database, map.Table);
        if (schema is not null && !schema.Describes(map))
        {
            schema = null; // information_schema has moved on (a later DDL): decode without names rather than mislabel.
        }

        RowChange[] rows;
        if (isCompressed)
        {
            var inflated = Decompress(reader.ReadToEnd());
            var inner = new PacketReader(inflated);
            rows = RowsDecoder.DecodeRows(ref inner, kind, map, schema, _rowScratch);
        }
        else
        {
            rows = RowsDecoder.DecodeRows(ref reader, kind, map, schema, _rowScratch);
        }

        return new RowsEvent(header, kind, map, schema, rows);
    }

    /// <summary>MariaDB compressed payload: one byte 0x80|algorithm&lt;&lt;4|n, n bytes of big-endian uncompressed
    /// length, then a zlib stream.</summary>
    public static byte[] Decompress(ReadOnlySpan<byte> data)
    {
        var reader = new PacketReader(data);
        var head = reader.ReadByte();
        var lengthBytes = head & 0x07;
        if ((head & 0x70) != 0 || lengthBytes is < 1 or > 4)
        {
            throw new MySqlProtocolException($"Unsupported compressed event header 0x{head:X2}.");
        }

        var length = 0;
        foreach (var b in reader.ReadBytes(lengthBytes))
        {
            length = (length << 8) | b;
        }

        // zlib cannot expand more than about 1032:1; a larger claim is corruption, not a reason to allocate.
        if (length < 0 || length > ((long)reader.Remaining * 1032) + 64)
        {
            throw new MySqlProtocolException($"Implausible uncompressed length {length}.");
        }

        var output = new byte[length];
        using var input = new MemoryStream(reader.ReadToEnd().ToArray(), writable: false);
        using var zlib = new ZLibStream(input, CompressionMode.Decompress);
        zlib.ReadExactly(output);
        return output;
    }
}
