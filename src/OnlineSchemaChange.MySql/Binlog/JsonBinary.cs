using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>MySQL's binary JSON (sql/json_binary.h, WL#8132) rendered as JSON text the way MySQL prints it
/// (", " between members, ": " after keys). MariaDB stores JSON as text and never sends this form.</summary>
public static class JsonBinary
{
    private const int MaxDepth = 150;

    public static string ToJsonText(ReadOnlySpan<byte> data)
    {
        if (data.Length == 0)
        {
            return "null";
        }

        var text = new StringBuilder();
        // Entries may point at shared values; a budget keeps a crafted document from taking exponential time.
        var budget = (data.Length * 4) + 16;
        WriteValue(text, data[0], data[1..], 0, ref budget);
        return text.ToString();
    }

    private static void WriteValue(StringBuilder text, byte type, ReadOnlySpan<byte> data, int depth, ref int budget)
    {
        if (depth > MaxDepth || --budget < 0)
        {
            throw new MySqlProtocolException("JSON document nested too deeply or with too many values for its size.");
        }

        switch (type)
        {
            case 0x00: WriteContainer(text, data, isObject: true, large: false, depth, ref budget); break;
            case 0x01: WriteContainer(text, data, isObject: true, large: true, depth, ref budget); break;
            case 0x02: WriteContainer(text, data, isObject: false, large: false, depth, ref budget); break;
            case 0x03: WriteContainer(text, data, isObject: false, large: true, depth, ref budget); break;
            case 0x04:
                text.Append(Need(data, 1)[0] switch
                {
                    0 => "null",
                    1 => "true",
                    2 => "false",
                    var other => throw new MySqlProtocolException($"Invalid JSON literal {other}."),
                });
                break;
            case 0x05: text.Append(BinaryPrimitives.ReadInt16LittleEndian(Need(data, 2))); break;
            case 0x06: text.Append(BinaryPrimitives.ReadUInt16LittleEndian(Need(data, 2))); break;
            case 0x07: text.Append(BinaryPrimitives.ReadInt32LittleEndian(Need(data, 4))); break;
            case 0x08: text.Append(BinaryPrimitives.ReadUInt32LittleEndian(Need(data, 4))); break;
            case 0x09: text.Append(BinaryPrimitives.ReadInt64LittleEndian(Need(data, 8))); break;
            case 0x0A: text.Append(BinaryPrimitives.ReadUInt64LittleEndian(Need(data, 8))); break;
            case 0x0B: WriteDouble(text, BinaryPrimitives.ReadDoubleLittleEndian(Need(data, 8))); break;
            case 0x0C:
                {
                    var length = ReadVariableLength(data, out var used);
                    WriteString(text, Encoding.UTF8.GetString(Need(data[used..], length)[..length]));
                    break;
                }

            case 0x0F:
                {
                    var fieldType = (ColumnType)Need(data, 1)[0];
                    var length = ReadVariableLength(data[1..], out var used);
                    WriteOpaque(text, fieldType, Need(data[(1 + used)..], length)[..length]);
                    break;
                }

            default:
                throw new MySqlProtocolException($"Invalid JSON value type 0x{type:X2}.");
        }
    }

    private static void WriteContainer(StringBuilder text, ReadOnlySpan<byte> data, bool isObject, bool large, int depth, ref int budget)
    {
        var offsetSize = large ? 4 : 2;
        var count = ReadOffset(data, 0, large);
        var size = ReadOffset(data, offsetSize, large);
        if (size > data.Length || count > size)
        {
            throw new MySqlProtocolException($"JSON container claims {size} bytes and {count} elements in {data.Length}.");
        }

        data = data[..size];
        var keyEntrySize = offsetSize + 2;
        var valueEntrySize = 1 + offsetSize;
        var valuesStart = (2 * offsetSize) + (isObject ? count * keyEntrySize : 0);
        text.Append(isObject ? '{' : '[');
        for (var i = 0; i < count; i++)
        {
            if (i > 0)
            {
                text.Append(", ");
            }

            if (isObject)
            {
                var keyEntry = (2 * offsetSize) + (i * keyEntrySize);
                var keyOffset = ReadOffset(data, keyEntry, large);
                var keyLength = BinaryPrimitives.ReadUInt16LittleEndian(Need(data[(keyEntry + offsetSize)..], 2));
                WriteString(text, Encoding.UTF8.GetString(Need(data[Math.Min(keyOffset, data.Length)..], keyLength)[..keyLength]));
                text.Append(": ");
            }

            var entry = valuesStart + (i * valueEntrySize);
            var valueType = Need(data[Math.Min(entry, data.Length)..], valueEntrySize)[0];
            var inline = valueType is 0x04 or 0x05 or 0x06 || (large && valueType is 0x07 or 0x08);
            if (inline)
            {
                WriteValue(text, valueType, data[(entry + 1)..], depth + 1, ref budget);
            }
            else
            {
                var valueOffset = ReadOffset(data, entry + 1, large);
                if (valueOffset >= data.Length)
                {
                    throw new MySqlProtocolException($"JSON value offset {valueOffset} beyond its container.");
                }

                WriteValue(text, valueType, data[valueOffset..], depth + 1, ref budget);
            }
        }

        text.Append(isObject ? '}' : ']');
    }

    private static int ReadOffset(ReadOnlySpan<byte> data, int at, bool large)
    {
        if (at < 0 || at > data.Length)
        {
            throw new MySqlProtocolException("JSON offset out of range.");
        }

        var value = large ? BinaryPrimitives.ReadUInt32LittleEndian(Need(data[at..], 4)) : BinaryPrimitives.ReadUInt16LittleEndian(Need(data[at..], 2));
        return value <= int.MaxValue ? (int)value : throw new MySqlProtocolException("JSON offset too large.");
    }

    /// <summary>Lengths of strings and opaque values: 7 bits per byte, low bits first, high bit set when more follow.</summary>
    private static int ReadVariableLength(ReadOnlySpan<byte> data, out int used)
    {
        var length = 0;
        for (used = 0; used < 5; used++)
        {
            var b = Need(data[used..], 1)[0];
            length |= (b & 0x7F) << (7 * used);
            if ((b & 0x80) == 0)
            {
                used++;
                return length >= 0 ? length : throw new MySqlProtocolException("JSON length overflows.");
            }
        }

        throw new MySqlProtocolException("JSON variable-length integer longer than 5 bytes.");
    }

    private static ReadOnlySpan<byte> Need(ReadOnlySpan<byte> data, int count) =>
        count >= 0 && data.Length >= count ? data : throw new MySqlProtocolException($"Truncated JSON value: wanted {count} bytes, {data.Length} left.");

    private static void WriteDouble(StringBuilder text, double value)
    {
        var formatted = value.ToString("R", CultureInfo.InvariantCulture);
        text.Append(formatted);
        if (double.IsFinite(value) && !formatted.Contains('.', StringComparison.Ordinal) && !formatted.Contains('E', StringComparison.Ordinal))
        {
            text.Append(".0"); // MySQL keeps a double recognisable as one
        }
    }

    private static void WriteOpaque(StringBuilder text, ColumnType fieldType, ReadOnlySpan<byte> data)
    {
        switch (fieldType)
        {
            case ColumnType.NewDecimal when data.Length >= 2:
                {
                    var reader = new PacketReader(data[2..]);
                    var value = ColumnValueDecoder.DecodeDecimal(ref reader, data[0], data[1]);
                    text.Append(value is decimal d ? d.ToString(CultureInfo.InvariantCulture) : value.ToString());
                    return;
                }

            case ColumnType.Date or ColumnType.DateTime or ColumnType.Timestamp or ColumnType.Time when data.Length >= 8:
                {
                    // Packed as in my_time.h: (((y*13+m)<<5|d)<<17 | h<<12|mi<<6|s) << 24 | microseconds.
                    var packed = BinaryPrimitives.ReadInt64LittleEndian(data);
                    var negative = packed < 0;
                    var abs = Math.Abs(packed);
                    var micro = abs & 0xFFFFFF;
                    var integral = abs >> 24;
                    var hms = integral & 0x1FFFF;
                    var ymd = integral >> 17;
                    var formatted = fieldType switch
                    {
                        ColumnType.Time => string.Create(CultureInfo.InvariantCulture, $"{(negative ? "-" : "")}{(hms >> 12) + (ymd * 24 % 1):D2}:{(hms >> 6) & 63:D2}:{hms & 63:D2}.{micro:D6}"),
                        ColumnType.Date => string.Create(CultureInfo.InvariantCulture, $"{(ymd >> 5) / 13:D4}-{(ymd >> 5) % 13:D2}-{ymd & 31:D2}"),
                        _ => string.Create(CultureInfo.InvariantCulture, $"{(ymd >> 5) / 13:D4}-{(ymd >> 5) % 13:D2}-{ymd & 31:D2} {hms >> 12:D2}:{(hms >> 6) & 63:D2}:{hms & 63:D2}.{micro:D6}"),
                    };
                    WriteString(text, formatted);
                    return;
                }

            default:
                WriteString(text, "base64:type" + ((byte)fieldType).ToString(CultureInfo.InvariantCulture) + ":" + Convert.ToBase64String(data));
                return;
        }
    }

    private static void WriteString(StringBuilder text, string value)
    {
        text.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                case < ' ': text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)); break;
                default: text.Append(c); break;
            }
        }

        text.Append('"');
    }
}
