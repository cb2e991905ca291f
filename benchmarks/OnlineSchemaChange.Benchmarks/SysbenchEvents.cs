using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using OnlineSchemaChange.MySql.Binlog;

namespace OnlineSchemaChange.Benchmarks;

/// <summary>A binlog stream shaped like sysbench oltp_write_only's UPDATE traffic on sbtest1 (id INT, k INT,
/// c CHAR(120), pad CHAR(60), utf8mb4): a FORMAT_DESCRIPTION, one TABLE_MAP, then UPDATE_ROWS events of one
/// before/after pair each, as MariaDB 10.11 logs them (v1 rows, CRC32).</summary>
public static class SysbenchEvents
{
    public const ulong TableId = 71;

    public static readonly TableSchema Schema = new("sbtest", "sbtest1",
    [
        new ColumnSchema("id", "int", false, null),
        new ColumnSchema("k", "int", false, null),
        new ColumnSchema("c", "char", false, "utf8mb4"),
        new ColumnSchema("pad", "char", false, "utf8mb4"),
    ]);

    public static byte[] FormatDescription()
    {
        var lengths = new byte[168];
        lengths[(int)BinlogEventType.Query - 1] = 13;
        lengths[(int)BinlogEventType.TableMap - 1] = 8;
        lengths[(int)BinlogEventType.UpdateRowsV1 - 1] = 8;
        var version = new byte[50];
        Encoding.ASCII.GetBytes("10.11.6-MariaDB-log").CopyTo(version, 0);
        var body = new List<byte>();
        body.AddRange([4, 0]);
        body.AddRange(version);
        body.AddRange(new byte[4]);
        body.Add(19);
        body.AddRange(lengths);
        body.Add(1);
        return Event(BinlogEventType.FormatDescription, [.. body]);
    }

    public static byte[] TableMap()
    {
        var body = new List<byte>();
        body.AddRange(Le(TableId, 6));
        body.AddRange([1, 0]);
        body.Add(6); body.AddRange("sbtest"u8.ToArray()); body.Add(0);
        body.Add(7); body.AddRange("sbtest1"u8.ToArray()); body.Add(0);
        body.Add(4);
        body.AddRange([(byte)ColumnType.Long, (byte)ColumnType.Long, (byte)ColumnType.String, (byte)ColumnType.String]);
        // CHAR(120) utf8mb4 = 480 bytes: real type 0xFE with length bits 0x100 folded in; CHAR(60) = 240 bytes.
        byte[] metadata = [(byte)(0xFE ^ ((480 & 0x300) >> 4)), 480 & 0xFF, 0xFE, 240];
        body.Add((byte)metadata.Length);
        body.AddRange(metadata);
        body.Add(0);
        return Event(BinlogEventType.TableMap, [.. body]);
    }

    public static byte[] Update(Random random, int id)
    {
        var body = new List<byte>();
        body.AddRange(Le(TableId, 6));
        body.AddRange([1, 0]);
        body.Add(4);
        body.Add(0x0F);
        body.Add(0x0F);
        var k = random.Next();
        var pad = Digits(random, 5);
        Row(body, id, k, Digits(random, 10), pad);
        Row(body, id, k, Digits(random, 10), pad);
        return Event(BinlogEventType.UpdateRowsV1, [.. body]);
    }

    private static void Row(List<byte> body, int id, int k, string c, string pad)
    {
        body.Add(0); // null bitmap
        body.AddRange(Le((ulong)id, 4));
        body.AddRange(Le((ulong)k, 4));
        body.AddRange(Le((ulong)c.Length, 2)); // max 480 bytes: 2-byte length
        body.AddRange(Encoding.ASCII.GetBytes(c));
        body.Add((byte)pad.Length);
        body.AddRange(Encoding.ASCII.GetBytes(pad));
    }

    /// <summary>sysbench's c and pad: groups of 11 digits joined by '-' (c: 120 chars, pad: 60).</summary>
    private static string Digits(Random random, int groups) =>
        string.Join('-', Enumerable.Range(0, groups + 1).Select(_ => random.NextInt64(10_000_000_000, 99_999_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture)))[..(groups == 5 ? 59 : 119)];

    private static byte[] Le(ulong value, int width)
    {
        var bytes = new byte[width];
        for (var i = 0; i < width; i++)
        {
            bytes[i] = (byte)(value >> (8 * i));
        }

        return bytes;
    }

    private static byte[] Event(BinlogEventType type, byte[] body)
    {
        var length = 19 + body.Length + 4;
        var e = new byte[length];
        BinaryPrimitives.WriteUInt32LittleEndian(e, 1_700_000_000);
        e[4] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(5), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(9), (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(13), 4096);
        body.CopyTo(e, 19);
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(length - 4), Crc32.HashToUInt32(e.AsSpan(0, length - 4)));
        return e;
    }
}
