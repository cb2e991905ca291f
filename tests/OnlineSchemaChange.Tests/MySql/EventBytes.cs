using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using OnlineSchemaChange.MySql.Binlog;

namespace OnlineSchemaChange.Tests.MySql;

/// <summary>Builds binlog events byte by byte from the documented layouts (MySQL source, log_event.h / binlog_event.h
/// and the MariaDB knowledge base "Replication Protocol" pages), independently of the decoder under test.</summary>
internal sealed class EventBytes
{
    private readonly List<byte> _bytes = [];

    public EventBytes U8(int v) { _bytes.Add((byte)v); return this; }
    public EventBytes U16(int v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); _bytes.AddRange(b.ToArray()); return this; }
    public EventBytes U24(int v) => U8(v & 0xFF).U8((v >> 8) & 0xFF).U8((v >> 16) & 0xFF);
    public EventBytes U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); _bytes.AddRange(b.ToArray()); return this; }
    public EventBytes U48(ulong v) { for (var i = 0; i < 6; i++) { _bytes.Add((byte)(v >> (8 * i))); } return this; }
    public EventBytes U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); _bytes.AddRange(b.ToArray()); return this; }
    public EventBytes Bytes(params byte[] v) { _bytes.AddRange(v); return this; }
    public EventBytes Text(string s) => Bytes(Encoding.UTF8.GetBytes(s));
    public EventBytes Lenenc(int v) => v < 251 ? U8(v) : U8(0xFC).U16(v);
    public byte[] ToArray() => [.. _bytes];

    /// <summary>Common 19-byte header + body (+ CRC32 over both when asked).</summary>
    public static byte[] Event(BinlogEventType type, byte[] body, uint nextPosition = 1000, bool crc = true, ushort flags = 0)
    {
        var length = 19 + body.Length + (crc ? 4 : 0);
        var e = new EventBytes().U32(1_700_000_000).U8((byte)type).U32(1).U32((uint)length).U32(nextPosition).U16(flags).Bytes(body).ToArray();
        if (!crc)
        {
            return e;
        }

        var sum = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(sum, Crc32.HashToUInt32(e));
        return [.. e, .. sum];
    }

    /// <summary>FORMAT_DESCRIPTION v4: version, 50-byte server version, timestamp, header length 19, post-header
    /// lengths per type (MySQL 8 values for the types we use), checksum algorithm byte.</summary>
    public static byte[] FormatDescription(bool crc = true, string serverVersion = "8.0.36")
    {
        var postHeaders = new byte[41];
        postHeaders[(int)BinlogEventType.Query - 1] = 13;
        postHeaders[(int)BinlogEventType.Rotate - 1] = 8;
        postHeaders[(int)BinlogEventType.TableMap - 1] = 8;
        foreach (var t in new[] { BinlogEventType.WriteRowsV1, BinlogEventType.UpdateRowsV1, BinlogEventType.DeleteRowsV1 })
        {
            postHeaders[(int)t - 1] = 8;
        }

        foreach (var t in new[] { BinlogEventType.WriteRowsV2, BinlogEventType.UpdateRowsV2, BinlogEventType.DeleteRowsV2 })
        {
            postHeaders[(int)t - 1] = 10;
        }

        var version = new byte[50];
        Encoding.ASCII.GetBytes(serverVersion).CopyTo(version, 0);
        var body = new EventBytes().U16(4).Bytes(version).U32(0).U8(19).Bytes(postHeaders).U8(crc ? 1 : 0).ToArray();
        if (!crc)
        {
            body = [.. body, 0, 0, 0, 0]; // the checksum field is there even when the algorithm is off
        }

        return Event(BinlogEventType.FormatDescription, body, 120, crc);
    }

    /// <summary>TABLE_MAP: u48 table id, u16 flags, length-prefixed NUL-terminated schema and table, lenenc column
    /// count, type bytes, lenenc metadata block, nullable bitmap.</summary>
    public static byte[] TableMap(ulong tableId, string db, string table, ColumnType[] types, byte[] metadata, bool crc = true)
    {
        var b = new EventBytes().U48(tableId).U16(1).U8(db.Length).Text(db).U8(0).U8(table.Length).Text(table).U8(0)
            .Lenenc(types.Length).Bytes([.. types.Select(t => (byte)t)]).Lenenc(metadata.Length).Bytes(metadata)
            .Bytes(new byte[(types.Length + 7) / 8].Select(_ => (byte)0xFF).ToArray());
        return Event(BinlogEventType.TableMap, b.ToArray(), crc: crc);
    }

    /// <summary>Rows event body after the common header: u48 table id, u16 flags, [v2: u16 extra length counting
    /// itself], lenenc column count, present bitmap(s), then the row images as given.</summary>
    public static byte[] Rows(BinlogEventType type, ulong tableId, int columnCount, byte[] present, byte[]? presentAfter, byte[] rows, bool crc = true, byte[]? v2Extra = null)
    {
        var b = new EventBytes().U48(tableId).U16(1);
        if (type is BinlogEventType.WriteRowsV2 or BinlogEventType.UpdateRowsV2 or BinlogEventType.DeleteRowsV2)
        {
            var extra = v2Extra ?? [];
            b.U16(2 + extra.Length).Bytes(extra);
        }

        b.Lenenc(columnCount).Bytes(present);
        if (presentAfter is not null)
        {
            b.Bytes(presentAfter);
        }

        b.Bytes(rows);
        return Event(type, b.ToArray(), crc: crc);
    }

    /// <summary>MariaDB compressed payload: 0x80 | lenlen, big-endian uncompressed length, zlib stream.</summary>
    public static byte[] MariaDbCompress(byte[] data)
    {
        using var output = new MemoryStream();
        using (var zlib = new ZLibStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            zlib.Write(data);
        }

        return [0x80 | 4, (byte)(data.Length >> 24), (byte)(data.Length >> 16), (byte)(data.Length >> 8), (byte)data.Length, .. output.ToArray()];
    }
}
