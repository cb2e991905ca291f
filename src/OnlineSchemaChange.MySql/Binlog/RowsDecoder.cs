using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>Row images of a rows event body after its post-header (log_event.h, Rows_log_event): column count,
/// columns-present bitmap (two for UPDATE), then per row a null bitmap sized by the PRESENT columns and the values.</summary>
public static class RowsDecoder
{
    private static readonly ConditionalWeakTable<TableSchema, Encoding?[]> Encodings = [];

    /// <param name="scratch">Reused between events so collecting rows costs one exact-size array per event.</param>
    public static RowChange[] DecodeRows(ref PacketReader reader, RowsEventKind kind, TableMapEvent map, TableSchema? schema, List<RowChange>? scratch = null)
    {
        var columnCount = reader.ReadLengthEncodedLength();
        if (columnCount > map.ColumnCount)
        {
            throw new MySqlProtocolException($"Rows event has {columnCount} columns, its table map {map.ColumnCount}.");
        }

        var bitmapLength = (columnCount + 7) / 8;
        var present = reader.ReadBytes(bitmapLength);
        var presentAfter = kind == RowsEventKind.Update ? reader.ReadBytes(bitmapLength) : present;
        var encodings = schema is null ? null : Encodings.GetValue(schema, ResolveEncodings);
        var rows = scratch ?? [];
        rows.Clear();
        while (!reader.IsAtEnd)
        {
            var before = reader.Offset;
            var first = ReadImage(ref reader, columnCount, present, map, schema, encodings);
            rows.Add(kind switch
            {
                RowsEventKind.Insert => new RowChange(null, first),
                RowsEventKind.Delete => new RowChange(first, null),
                _ => new RowChange(first, ReadImage(ref reader, columnCount, presentAfter, map, schema, encodings)),
            });
            if (reader.Offset == before)
            {
                // No column present: a row image of zero bytes would repeat forever.
                throw new MySqlProtocolException("Rows event whose row images are empty.");
            }
        }

        return [.. rows];
    }

    private static object?[] ReadImage(ref PacketReader reader, int columnCount, ReadOnlySpan<byte> present, TableMapEvent map, TableSchema? schema, Encoding?[]? encodings)
    {
        var presentCount = 0;
        foreach (var b in present)
        {
            presentCount += BitOperations.PopCount(b);
        }

        var nulls = reader.ReadBytes((presentCount + 7) / 8);
        var values = new object?[map.ColumnCount];
        var nullIndex = 0;
        for (var i = 0; i < map.ColumnCount; i++)
        {
            if (i >= columnCount || (present[i >> 3] & (1 << (i & 7))) == 0)
            {
                values[i] = RowValues.NotPresent;
                continue;
            }

            var isNull = (nulls[nullIndex >> 3] & (1 << (nullIndex & 7))) != 0;
            nullIndex++;
            if (!isNull)
            {
                values[i] = ColumnValueDecoder.Decode(ref reader, map.ColumnTypes[i], map.ColumnMetadata[i], schema?.Columns[i], encodings?[i]);
            }
        }

        return values;
    }

    private static Encoding?[] ResolveEncodings(TableSchema schema) =>
        [.. schema.Columns.Select(c => CharacterSets.Encoding(c.CharacterSet))];
}

/// <summary>Maps MySQL character set names to .NET encodings; null means a binary string (bytes, not text).</summary>
public static class CharacterSets
{
    static CharacterSets() => System.Text.Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);

    public static Encoding? Encoding(string? characterSet) => characterSet?.ToLowerInvariant() switch
    {
        null or "binary" => null,
        "utf8mb4" or "utf8mb3" or "utf8" => System.Text.Encoding.UTF8,
        "latin1" => System.Text.Encoding.GetEncoding(1252), // MySQL's latin1 is cp1252
        "ascii" => System.Text.Encoding.ASCII,
        "ucs2" or "utf16" => System.Text.Encoding.BigEndianUnicode,
        "utf16le" => System.Text.Encoding.Unicode,
        "utf32" => new UTF32Encoding(bigEndian: true, byteOrderMark: false),
        "cp1250" => System.Text.Encoding.GetEncoding(1250),
        "cp1251" => System.Text.Encoding.GetEncoding(1251),
        "cp1256" => System.Text.Encoding.GetEncoding(1256),
        "cp1257" => System.Text.Encoding.GetEncoding(1257),
        "latin2" => System.Text.Encoding.GetEncoding(28592),
        "greek" => System.Text.Encoding.GetEncoding(28597),
        "hebrew" => System.Text.Encoding.GetEncoding(28598),
        "koi8r" => System.Text.Encoding.GetEncoding(20866),
        "sjis" or "cp932" => System.Text.Encoding.GetEncoding(932),
        "gbk" => System.Text.Encoding.GetEncoding(936),
        "gb2312" => System.Text.Encoding.GetEncoding(936),
        "big5" => System.Text.Encoding.GetEncoding(950),
        "euckr" => System.Text.Encoding.GetEncoding(51949),
        "ujis" or "eucjpms" => System.Text.Encoding.GetEncoding(51932),
        _ => throw new NotSupportedException($"Character set '{characterSet}' is not supported."),
    };
}
