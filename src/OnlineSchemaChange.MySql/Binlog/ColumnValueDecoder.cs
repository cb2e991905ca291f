using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>One column value in a row image (layouts: MySQL's field.cc pack formats, my_time.cc and decimal.c;
/// summarized in facts sheet section 1). Without a <see cref="ColumnSchema"/> integers are read as signed and
/// strings as bytes, because the event alone does not say otherwise.</summary>
public static class ColumnValueDecoder
{
    private static readonly int[] DigitsToBytes = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    private static readonly uint[] PowersOfTen = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

    public static object? Decode(ref PacketReader reader, ColumnType type, ushort meta, ColumnSchema? column, Encoding? encoding)
    {
        var unsigned = column?.IsUnsigned ?? false;
        switch (type)
        {
            case ColumnType.Tiny:
                return unsigned ? reader.ReadByte() : (sbyte)reader.ReadByte();
            case ColumnType.Short:
                return unsigned ? reader.ReadUInt16() : (short)reader.ReadUInt16();
            case ColumnType.Int24:
                {
                    var raw = reader.ReadUInt24();
                    return unsigned ? raw : ((int)(raw << 8)) >> 8;
                }

            case ColumnType.Long:
                return unsigned ? reader.ReadUInt32() : (int)reader.ReadUInt32();
            case ColumnType.LongLong:
                return unsigned ? reader.ReadUInt64() : (long)reader.ReadUInt64();
            case ColumnType.Float:
                return BitConverter.Int32BitsToSingle((int)reader.ReadUInt32());
            case ColumnType.Double:
                return BitConverter.Int64BitsToDouble((long)reader.ReadUInt64());
            case ColumnType.NewDecimal:
                return DecodeDecimal(ref reader, meta >> 8, meta & 0xFF);
            case ColumnType.Year:
                {
                    var year = reader.ReadByte();
                    return year == 0 ? 0 : 1900 + year;
                }

            case ColumnType.Date or ColumnType.NewDate:
                {
                    var raw = reader.ReadUInt24();
                    return MakeDate((int)(raw >> 9), (int)((raw >> 5) & 15), (int)(raw & 31));
                }

            case ColumnType.Time2:
                return DecodeTime2(ref reader, meta);
            case ColumnType.DateTime2:
                return DecodeDateTime2(ref reader, meta);
            case ColumnType.Timestamp2:
                {
                    var seconds = BinaryPrimitives.ReadUInt32BigEndian(reader.ReadBytes(4));
                    var micro = ReadFraction(ref reader, meta);
                    if (seconds == 0 && micro == 0)
                    {
                        return new MySqlDateTimeParts(0, 0, 0, 0, 0, 0, 0, meta, HasTime: true);
                    }

                    return DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(micro * 10L);
                }

            case ColumnType.Timestamp:
                {
                    var seconds = reader.ReadUInt32();
                    return seconds == 0 ? new MySqlDateTimeParts(0, 0, 0, 0, 0, 0, 0, 0, HasTime: true) : DateTimeOffset.FromUnixTimeSeconds(seconds);
                }

            case ColumnType.DateTime:
                {
                    // Pre-5.6 format: the decimal number YYYYMMDDhhmmss as a u64.
                    var raw = reader.ReadUInt64();
                    var date = raw / 1000000;
                    var time = raw % 1000000;
                    return MakeDateTime((int)(date / 10000), (int)(date / 100 % 100), (int)(date % 100), (int)(time / 10000), (int)(time / 100 % 100), (int)(time % 100), 0, 0);
                }

            case ColumnType.Time:
                {
                    var raw = (int)(reader.ReadUInt24() << 8) >> 8; // hhmmss, signed
                    var abs = Math.Abs(raw);
                    var span = new TimeSpan(abs / 10000, abs / 100 % 100, abs % 100);
                    return raw < 0 ? -span : span;
                }

            case ColumnType.VarChar or ColumnType.VarString:
                {
                    var length = meta < 256 ? reader.ReadByte() : reader.ReadUInt16();
                    return Text(reader.ReadBytes(length), encoding);
                }

            case ColumnType.String or ColumnType.Enum or ColumnType.Set:
                return DecodeString(ref reader, meta, column, encoding);
            case ColumnType.Bit:
                {
                    var bits = ((meta >> 8) * 8) + (meta & 0xFF);
                    ulong value = 0;
                    foreach (var b in reader.ReadBytes((bits + 7) / 8))
                    {
                        value = (value << 8) | b;
                    }

                    return value;
                }

            case ColumnType.Blob or ColumnType.TinyBlob or ColumnType.MediumBlob or ColumnType.LongBlob:
                {
                    var length = (int)reader.ReadUIntLittleEndian(meta);
                    return Text(reader.ReadBytes(length), encoding);
                }

            case ColumnType.Geometry:
                return reader.ReadBytes((int)reader.ReadUIntLittleEndian(meta)).ToArray();
            case ColumnType.Json:
                return JsonBinary.ToJsonText(reader.ReadBytes((int)reader.ReadUIntLittleEndian(meta)));
            case ColumnType.Null:
                return null;
            default:
                throw new MySqlProtocolException($"Column type {type} ({(byte)type}) is not supported in row images.");
        }
    }

    private static object Text(ReadOnlySpan<byte> bytes, Encoding? encoding) => encoding is null ? bytes.ToArray() : encoding.GetString(bytes);

    private static object DecodeString(ref PacketReader reader, ushort meta, ColumnSchema? column, Encoding? encoding)
    {
        int b0 = meta >> 8, b1 = meta & 0xFF;
        int realType, length;
        if ((b0 & 0x30) != 0x30)
        {
            // CHAR longer than 255 bytes: two high bits of the length hide in the type byte (MySQL bug #37426).
            length = b1 | (((b0 & 0x30) ^ 0x30) << 4);
            realType = b0 | 0x30;
        }
        else
        {
            length = b1;
            realType = b0;
        }

        switch ((ColumnType)realType)
        {
            case ColumnType.Enum:
                {
                    var index = (int)reader.ReadUIntLittleEndian(length);
                    if (column?.Members is { } members)
                    {
                        return index == 0 ? "" : index <= members.Count ? members[index - 1] : throw new MySqlProtocolException($"ENUM index {index} beyond {members.Count} members.");
                    }

                    return index;
                }

            case ColumnType.Set:
                {
                    var bits = reader.ReadUIntLittleEndian(length);
                    if (column?.Members is { } members)
                    {
                        var names = new List<string>();
                        for (var i = 0; i < members.Count && i < 64; i++)
                        {
                            if ((bits & (1UL << i)) != 0)
                            {
                                names.Add(members[i]);
                            }
                        }

                        return string.Join(',', names);
                    }

                    return bits;
                }

            default:
                {
                    var size = length < 256 ? reader.ReadByte() : reader.ReadUInt16();
                    var bytes = reader.ReadBytes(size);
                    if (encoding is null && column?.DataType == "binary" && size < length)
                    {
                        // BINARY(n) is logged without its trailing zero bytes; the column value has them.
                        var padded = new byte[length];
                        bytes.CopyTo(padded);
                        return padded;
                    }

                    return Text(bytes, encoding);
                }
        }
    }

    /// <summary>Packed decimal (decimal.c, decimal2bin): big-endian groups of 9 digits in 4 bytes, leftover digits
    /// in 1-4 bytes, sign in the inverted top bit, negatives stored one's-complemented.</summary>
    public static object DecodeDecimal(ref PacketReader reader, int precision, int scale)
    {
        if (precision is < 1 or > 65 || scale < 0 || scale > precision || scale > 30)
        {
            throw new MySqlProtocolException($"Invalid DECIMAL({precision},{scale}).");
        }

        var integral = precision - scale;
        int intFull = integral / 9, intRest = integral % 9, fracFull = scale / 9, fracRest = scale % 9;
        var size = (intFull * 4) + DigitsToBytes[intRest] + (fracFull * 4) + DigitsToBytes[fracRest];
        Span<byte> bytes = stackalloc byte[size];
        reader.ReadBytes(size).CopyTo(bytes);
        var positive = (bytes[0] & 0x80) != 0;
        bytes[0] ^= 0x80;
        if (!positive)
        {
            foreach (ref var b in bytes)
            {
                b ^= 0xFF;
            }
        }

        var offset = 0;
        if (precision <= 38)
        {
            UInt128 unscaled = 0;
            Accumulate(ref unscaled, bytes, ref offset, DigitsToBytes[intRest], intRest);
            for (var i = 0; i < intFull; i++)
            {
                Accumulate(ref unscaled, bytes, ref offset, 4, 9);
            }

            for (var i = 0; i < fracFull; i++)
            {
                Accumulate(ref unscaled, bytes, ref offset, 4, 9);
            }

            Accumulate(ref unscaled, bytes, ref offset, DigitsToBytes[fracRest], fracRest);
            if (precision <= 28)
            {
                var lo = (int)(uint)unscaled;
                var mid = (int)(uint)(unscaled >> 32);
                var hi = (int)(uint)(unscaled >> 64);
                return new decimal(lo, mid, hi, !positive && unscaled != 0, (byte)scale);
            }

            var big = (BigInteger)unscaled;
            return new ExactDecimal(positive ? big : -big, scale);
        }

        BigInteger value = 0;
        AccumulateBig(ref value, bytes, ref offset, DigitsToBytes[intRest], intRest);
        for (var i = 0; i < intFull + fracFull; i++)
        {
            AccumulateBig(ref value, bytes, ref offset, 4, 9);
        }

        AccumulateBig(ref value, bytes, ref offset, DigitsToBytes[fracRest], fracRest);
        return new ExactDecimal(positive ? value : -value, scale);
    }

    private static uint ReadGroup(ReadOnlySpan<byte> bytes, ref int offset, int width, int digits)
    {
        uint group = 0;
        for (var i = 0; i < width; i++)
        {
            group = (group << 8) | bytes[offset + i];
        }

        offset += width;
        if (group >= PowersOfTen[digits] && digits > 0)
        {
            throw new MySqlProtocolException($"DECIMAL digit group {group} has more than {digits} digits.");
        }

        return group;
    }

    private static void Accumulate(ref UInt128 value, ReadOnlySpan<byte> bytes, ref int offset, int width, int digits)
    {
        if (width == 0)
        {
            return;
        }

        value = (value * PowersOfTen[digits]) + ReadGroup(bytes, ref offset, width, digits);
    }

    private static void AccumulateBig(ref BigInteger value, ReadOnlySpan<byte> bytes, ref int offset, int width, int digits)
    {
        if (width == 0)
        {
            return;
        }

        value = (value * PowersOfTen[digits]) + ReadGroup(bytes, ref offset, width, digits);
    }

    /// <summary>Fractional seconds of TIME2/DATETIME2/TIMESTAMP2: (fsp+1)/2 big-endian bytes, in units of
    /// 10^(6-2*bytes) microseconds.</summary>
    private static int ReadFraction(ref PacketReader reader, int fsp)
    {
        switch (fsp)
        {
            case 0: return 0;
            case 1 or 2: return reader.ReadByte() * 10000;
            case 3 or 4: return BinaryPrimitives.ReadUInt16BigEndian(reader.ReadBytes(2)) * 100;
            case 5 or 6:
                var s = reader.ReadBytes(3);
                return (s[0] << 16) | (s[1] << 8) | s[2];
            default: throw new MySqlProtocolException($"Invalid fractional seconds precision {fsp}.");
        }
    }

    private static object DecodeDateTime2(ref PacketReader reader, int fsp)
    {
        var s = reader.ReadBytes(5);
        var packed = (long)(((ulong)s[0] << 32) | ((ulong)s[1] << 24) | ((ulong)s[2] << 16) | ((ulong)s[3] << 8) | s[4]) - 0x8000000000L;
        var micro = ReadFraction(ref reader, fsp);
        var yearMonthDay = packed >> 17;
        var yearMonth = yearMonthDay >> 5;
        var hms = packed & 0x1FFFF;
        return MakeDateTime((int)(yearMonth / 13), (int)(yearMonth % 13), (int)(yearMonthDay & 31),
            (int)(hms >> 12), (int)((hms >> 6) & 63), (int)(hms & 63), micro, fsp);
    }

    /// <summary>TIME2 (my_time.cc, my_time_packed_from_binary): 3 bytes integer part offset by 0x800000, then the
    /// fraction; for negative values with a fraction the integer part is one less and the fraction is complemented.</summary>
    private static TimeSpan DecodeTime2(ref PacketReader reader, int fsp)
    {
        long packed;
        switch (fsp)
        {
            case 0:
                packed = (ReadBigEndian(reader.ReadBytes(3)) - 0x800000L) << 24;
                break;
            case 1 or 2:
                {
                    var integral = ReadBigEndian(reader.ReadBytes(3)) - 0x800000L;
                    long fraction = reader.ReadByte();
                    if (integral < 0 && fraction != 0)
                    {
                        integral++;
                        fraction -= 0x100;
                    }

                    packed = (integral << 24) + (fraction * 10000);
                    break;
                }

            case 3 or 4:
                {
                    var integral = ReadBigEndian(reader.ReadBytes(3)) - 0x800000L;
                    long fraction = BinaryPrimitives.ReadUInt16BigEndian(reader.ReadBytes(2));
                    if (integral < 0 && fraction != 0)
                    {
                        integral++;
                        fraction -= 0x10000;
                    }

                    packed = (integral << 24) + (fraction * 100);
                    break;
                }

            case 5 or 6:
                packed = ReadBigEndian(reader.ReadBytes(6)) - 0x800000000000L;
                break;
            default:
                throw new MySqlProtocolException($"Invalid TIME fractional precision {fsp}.");
        }

        var negative = packed < 0;
        var abs = Math.Abs(packed);
        var hms = abs >> 24;
        var micro = abs & 0xFFFFFF;
        var ticks = ((((hms >> 12) & 0x3FF) * 3600) + (((hms >> 6) & 63) * 60) + (hms & 63)) * TimeSpan.TicksPerSecond + (micro * 10);
        return new TimeSpan(negative ? -ticks : ticks);
    }

    private static long ReadBigEndian(ReadOnlySpan<byte> bytes)
    {
        long value = 0;
        foreach (var b in bytes)
        {
            value = (value << 8) | b;
        }

        return value;
    }

    private static object MakeDate(int year, int month, int day) =>
        year is >= 1 and <= 9999 && month is >= 1 and <= 12 && day >= 1 && day <= DateTime.DaysInMonth(year, month)
            ? new DateOnly(year, month, day)
            : new MySqlDateTimeParts(year, month, day, 0, 0, 0, 0, 0, HasTime: false);

    private static object MakeDateTime(int year, int month, int day, int hour, int minute, int second, int micro, int fsp)
    {
        if (year is >= 1 and <= 9999 && month is >= 1 and <= 12 && day >= 1 && day <= DateTime.DaysInMonth(year, month)
            && hour < 24 && minute < 60 && second < 60 && micro < 1000000)
        {
            return new DateTime(year, month, day, hour, minute, second, DateTimeKind.Unspecified).AddTicks(micro * 10L);
        }

        return new MySqlDateTimeParts(year, month, day, hour, minute, second, micro, fsp, HasTime: true);
    }
}
