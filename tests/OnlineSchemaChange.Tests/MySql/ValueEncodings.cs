using System.Globalization;
using System.Numerics;
using System.Text;

namespace OnlineSchemaChange.Tests.MySql;

/// <summary>Encoders written from the storage layouts (MySQL strings/decimal.c decimal2bin, mysys/my_time.cc
/// *_to_binary, json_binary.h), used to produce bytes for the decoder tests; they share no code with the decoder.</summary>
internal static class ValueEncodings
{
    private static readonly int[] BytesForDigits = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

    public static byte[] Decimal(string value, int precision, int scale)
    {
        var negative = value.StartsWith('-');
        var parts = value.TrimStart('-').Split('.');
        var integral = parts[0].TrimStart('0').PadLeft(precision - scale, '0');
        var fraction = (parts.Length > 1 ? parts[1] : "").PadRight(scale, '0');
        var bytes = new List<byte>();
        var lead = integral.Length % 9;
        if (lead > 0)
        {
            bytes.AddRange(BigEndian(uint.Parse(integral[..lead], CultureInfo.InvariantCulture), BytesForDigits[lead]));
        }

        for (var i = lead; i < integral.Length; i += 9)
        {
            bytes.AddRange(BigEndian(uint.Parse(integral.AsSpan(i, 9), CultureInfo.InvariantCulture), 4));
        }

        var full = fraction.Length / 9 * 9;
        for (var i = 0; i < full; i += 9)
        {
            bytes.AddRange(BigEndian(uint.Parse(fraction.AsSpan(i, 9), CultureInfo.InvariantCulture), 4));
        }

        if (fraction.Length > full)
        {
            bytes.AddRange(BigEndian(uint.Parse(fraction[full..], CultureInfo.InvariantCulture), BytesForDigits[fraction.Length - full]));
        }

        var result = bytes.ToArray();
        if (negative)
        {
            for (var i = 0; i < result.Length; i++)
            {
                result[i] ^= 0xFF;
            }
        }

        result[0] ^= 0x80;
        return result;
    }

    public static byte[] BigEndian(ulong value, int width)
    {
        var bytes = new byte[width];
        for (var i = width - 1; i >= 0; i--)
        {
            bytes[i] = (byte)value;
            value >>= 8;
        }

        return bytes;
    }

    /// <summary>Fraction bytes of the temporal types: (fsp+1)/2 bytes holding micro / 10^(6 - 2*bytes).</summary>
    public static byte[] Fraction(int micro, int fsp) => fsp switch
    {
        0 => [],
        1 or 2 => BigEndian((ulong)(micro / 10000), 1),
        3 or 4 => BigEndian((ulong)(micro / 100), 2),
        _ => BigEndian((ulong)micro, 3),
    };

    public static byte[] DateTime2(int y, int mo, int d, int h, int mi, int s, int micro, int fsp)
    {
        var ymd = (((long)y * 13 + mo) << 5) | (long)d;
        var hms = (h << 12) | (mi << 6) | s;
        var packed = (ymd << 17) | (long)hms;
        return [.. BigEndian((ulong)(packed + 0x8000000000L), 5), .. Fraction(micro, fsp)];
    }

    public static byte[] Timestamp2(uint seconds, int micro, int fsp) => [.. BigEndian(seconds, 4), .. Fraction(micro, fsp)];

    /// <summary>my_time_packed_to_binary with C semantics: integer part = floor(packed / 2^24) on an arithmetic
    /// shift, fraction = truncated remainder, stored in the low byte(s) as a signed value.</summary>
    public static byte[] Time2(bool negative, int h, int mi, int s, int micro, int fsp)
    {
        var hms = ((long)h << 12) | ((long)mi << 6) | (long)s;
        var rounded = fsp switch { 0 => 0, 1 or 2 => micro / 10000 * 10000, 3 or 4 => micro / 100 * 100, _ => micro };
        var packed = (hms << 24) + rounded;
        if (negative)
        {
            packed = -packed;
        }

        var intPart = packed >> 24;
        var fracPart = packed % (1L << 24);
        return fsp switch
        {
            0 => BigEndian((ulong)(intPart + 0x800000), 3),
            1 or 2 => [.. BigEndian((ulong)(intPart + 0x800000), 3), unchecked((byte)(sbyte)(fracPart / 10000))],
            3 or 4 => [.. BigEndian((ulong)(intPart + 0x800000), 3), .. BigEndian(unchecked((ushort)(short)(fracPart / 100)), 2)],
            _ => BigEndian((ulong)(packed + 0x800000000000L), 6),
        };
    }

    public static byte[] Date(int y, int mo, int d)
    {
        var v = (y << 9) | (mo << 5) | d;
        return [(byte)v, (byte)(v >> 8), (byte)(v >> 16)];
    }

    /// <summary>Binary JSON, small format only: values are null, bool, short ints (inline), long, double, string,
    /// nested objects (SortedDictionary: keys sorted as MySQL stores them) and arrays (object[]).</summary>
    public static byte[] Json(object? value)
    {
        var (type, payload) = JsonValue(value);
        return [type, .. payload];
    }

    private static (byte Type, byte[] Payload) JsonValue(object? value) => value switch
    {
        null => (0x04, [0]),
        true => (0x04, [1]),
        false => (0x04, [2]),
        short s => (0x05, BitConverter.GetBytes(s)),
        long l => (0x09, BitConverter.GetBytes(l)),
        double d => (0x0B, BitConverter.GetBytes(d)),
        string s => (0x0C, [.. VarLength(Encoding.UTF8.GetByteCount(s)), .. Encoding.UTF8.GetBytes(s)]),
        SortedDictionary<string, object?> o => (0x00, Container([.. o.Keys], [.. o.Values])),
        object?[] a => (0x02, Container(null, a)),
        _ => throw new ArgumentException("unsupported", nameof(value)),
    };

    private static byte[] Container(string[]? keys, object?[] values)
    {
        var n = values.Length;
        var header = 4 + (keys is null ? 0 : n * 4) + (n * 3);
        var tail = new List<byte>();
        var keyEntries = new List<byte>();
        var valueEntries = new List<byte>();
        if (keys is not null)
        {
            foreach (var key in keys)
            {
                var bytes = Encoding.UTF8.GetBytes(key);
                keyEntries.AddRange(BitConverter.GetBytes((ushort)(header + tail.Count)));
                keyEntries.AddRange(BitConverter.GetBytes((ushort)bytes.Length));
                tail.AddRange(bytes);
            }
        }

        foreach (var v in values)
        {
            var (type, payload) = JsonValue(v);
            valueEntries.Add(type);
            if (type is 0x04 or 0x05)
            {
                valueEntries.AddRange(payload.Length == 1 ? [payload[0], 0] : payload);
            }
            else
            {
                valueEntries.AddRange(BitConverter.GetBytes((ushort)(header + tail.Count)));
                tail.AddRange(payload);
            }
        }

        var size = header + tail.Count;
        return [.. BitConverter.GetBytes((ushort)n), .. BitConverter.GetBytes((ushort)size), .. keyEntries, .. valueEntries, .. tail];
    }

    private static byte[] VarLength(int length)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(length & 0x7F);
            length >>= 7;
            bytes.Add(length > 0 ? (byte)(b | 0x80) : b);
        }
        while (length > 0);
        return [.. bytes];
    }

    public static BigInteger Pow10(int n) => BigInteger.Pow(10, n);
}
