using System.Globalization;
using System.Numerics;
using System.Text;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Protocol;
using static OnlineSchemaChange.Tests.MySql.ValueEncodings;

namespace OnlineSchemaChange.Tests.MySql;

// Value layouts: MySQL field.cc (Field_*::pack), strings/decimal.c (decimal2bin), mysys/my_time.cc
// (my_datetime_packed_to_binary, my_time_packed_to_binary, my_timestamp_to_binary) and json_binary.h.
// DATETIME2/TIME2/TIMESTAMP2 with fractions, binary JSON and v2 rows are MySQL 5.6+/8 forms no local MariaDB
// necessarily produces, so they are built here from those layouts.
public sealed class ColumnValueTests
{
    private static object? Decode(byte[] bytes, ColumnType type, ushort meta, ColumnSchema? column = null, Encoding? encoding = null)
    {
        var reader = new PacketReader(bytes);
        var value = ColumnValueDecoder.Decode(ref reader, type, meta, column, encoding);
        Assert.True(reader.IsAtEnd, "the decoder must consume exactly the value's bytes");
        return value;
    }

    private static ColumnSchema Unsigned(string type) => new("c", type, IsUnsigned: true, null);

    [Fact]
    public void Integers_by_width_and_signedness()
    {
        Assert.Equal((sbyte)-1, Decode([0xFF], ColumnType.Tiny, 0));
        Assert.Equal((byte)255, Decode([0xFF], ColumnType.Tiny, 0, Unsigned("tinyint")));
        Assert.Equal((short)-2, Decode([0xFE, 0xFF], ColumnType.Short, 0));
        Assert.Equal((ushort)65534, Decode([0xFE, 0xFF], ColumnType.Short, 0, Unsigned("smallint")));
        Assert.Equal(-8388608, Decode([0x00, 0x00, 0x80], ColumnType.Int24, 0));
        Assert.Equal(8388608u, Decode([0x00, 0x00, 0x80], ColumnType.Int24, 0, Unsigned("mediumint")));
        Assert.Equal(int.MinValue, Decode([0, 0, 0, 0x80], ColumnType.Long, 0));
        Assert.Equal(2147483648u, Decode([0, 0, 0, 0x80], ColumnType.Long, 0, Unsigned("int")));
        Assert.Equal(long.MinValue, Decode([0, 0, 0, 0, 0, 0, 0, 0x80], ColumnType.LongLong, 0));
        Assert.Equal(ulong.MaxValue, Decode([.. Enumerable.Repeat((byte)0xFF, 8)], ColumnType.LongLong, 0, Unsigned("bigint")));
    }

    [Fact]
    public void Floating_point()
    {
        Assert.Equal(1.5f, Decode(BitConverter.GetBytes(1.5f), ColumnType.Float, 4));
        Assert.Equal(-2.25e300, Decode(BitConverter.GetBytes(-2.25e300), ColumnType.Double, 8));
    }

    // The example in decimal.c's comment: 1234567890.1234 as DECIMAL(14,4) is 81 0D FB 38 D2 04 D2.
    [Fact]
    public void Decimal_matches_the_documented_example()
    {
        Assert.Equal(Convert.FromHexString("810DFB38D204D2"), Decimal("1234567890.1234", 14, 4));
        Assert.Equal(1234567890.1234m, Decode(Convert.FromHexString("810DFB38D204D2"), ColumnType.NewDecimal, (14 << 8) | 4));
        Assert.Equal(-1234567890.1234m, Decode(Convert.FromHexString("7EF204C72DFB2D"), ColumnType.NewDecimal, (14 << 8) | 4));
    }

    [Theory]
    [InlineData("0.00", 10, 2)]
    [InlineData("-0.01", 10, 2)]
    [InlineData("99999999.99", 10, 2)]
    [InlineData("-99999999.99", 10, 2)]
    [InlineData("5", 1, 0)]
    [InlineData("0.123456789012345678901234567", 28, 27)]
    [InlineData("-9999999999999999999999999999", 28, 0)]
    public void Decimal_up_to_28_digits_is_a_System_Decimal(string text, int precision, int scale)
    {
        var value = Decode(Decimal(text, precision, scale), ColumnType.NewDecimal, (ushort)((precision << 8) | scale));
        var d = Assert.IsType<decimal>(value);
        Assert.Equal(decimal.Parse(text, CultureInfo.InvariantCulture), d);
        Assert.Equal(scale, d.Scale);
    }

    [Fact]
    public void Decimal_beyond_28_digits_is_exact_up_to_65()
    {
        var random = new Random(65);
        for (var i = 0; i < 200; i++)
        {
            var precision = random.Next(29, 66);
            var scale = random.Next(0, Math.Min(30, precision) + 1);
            var digits = string.Concat(Enumerable.Range(0, precision).Select(_ => (char)('0' + random.Next(10))));
            var text = (random.Next(2) == 0 ? "-" : "") + (scale == 0 ? digits : digits[..^scale] + "." + digits[^scale..]);
            var value = Assert.IsType<ExactDecimal>(Decode(Decimal(text, precision, scale), ColumnType.NewDecimal, (ushort)((precision << 8) | scale)));
            var expected = BigInteger.Parse(text.Replace(".", "", StringComparison.Ordinal), CultureInfo.InvariantCulture);
            Assert.Equal(expected, value.Unscaled);
            Assert.Equal(scale, value.Scale);
            Assert.Equal(Normalize(text), value.ToString());
        }
    }

    private static string Normalize(string text)
    {
        var negative = text.StartsWith('-');
        var body = text.TrimStart('-');
        var parts = body.Split('.');
        var integral = parts[0].TrimStart('0');
        integral = integral.Length == 0 ? "0" : integral;
        var result = parts.Length > 1 ? integral + "." + parts[1] : integral;
        var isZero = result.All(c => c is '0' or '.');
        return negative && !isZero ? "-" + result : result;
    }

    [Theory]
    [InlineData(2024, 2, 29, 13, 14, 15, 123456, 6)]
    [InlineData(1000, 1, 1, 0, 0, 0, 0, 0)]
    [InlineData(9999, 12, 31, 23, 59, 59, 999999, 6)]
    [InlineData(2001, 7, 4, 1, 2, 3, 120000, 2)]
    [InlineData(2001, 7, 4, 1, 2, 3, 123400, 4)]
    [InlineData(2001, 7, 4, 1, 2, 3, 100000, 1)]
    public void Datetime2_with_every_precision(int y, int mo, int d, int h, int mi, int s, int micro, int fsp)
    {
        var value = Decode(DateTime2(y, mo, d, h, mi, s, micro, fsp), ColumnType.DateTime2, (ushort)fsp);
        Assert.Equal(new DateTime(y, mo, d, h, mi, s).AddTicks(micro * 10L), value);
    }

    [Fact]
    public void Zero_and_partial_dates_keep_their_parts()
    {
        var zero = Assert.IsType<MySqlDateTimeParts>(Decode(DateTime2(0, 0, 0, 0, 0, 0, 0, 0), ColumnType.DateTime2, 0));
        Assert.Equal("0000-00-00 00:00:00", zero.ToString());
        Assert.Equal("2020-00-15", Decode(Date(2020, 0, 15), ColumnType.Date, 0)!.ToString());
        Assert.Equal(new DateOnly(1999, 12, 31), Decode(Date(1999, 12, 31), ColumnType.Date, 0));
        Assert.Equal("0000-00-00 00:00:00.000", Decode(Timestamp2(0, 0, 3), ColumnType.Timestamp2, 3)!.ToString());
    }

    [Fact]
    public void Timestamp2_is_utc_seconds_with_fraction()
    {
        var value = Decode(Timestamp2(2147483647, 999999, 6), ColumnType.Timestamp2, 6);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(2147483647).AddTicks(9999990), value);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1), Decode(Timestamp2(1, 0, 0), ColumnType.Timestamp2, 0));
    }

    [Theory]
    [InlineData(false, 0, 0, 0, 0, 0)]
    [InlineData(false, 838, 59, 59, 0, 0)]
    [InlineData(true, 838, 59, 59, 0, 0)]
    [InlineData(true, 0, 0, 1, 500000, 1)]
    [InlineData(true, 0, 0, 0, 10000, 2)]
    [InlineData(true, 12, 34, 56, 789000, 3)]
    [InlineData(true, 1, 0, 0, 100, 4)]
    [InlineData(false, 1, 0, 0, 100, 4)]
    [InlineData(true, 838, 59, 58, 999999, 6)]
    [InlineData(false, 23, 59, 59, 1, 5)]
    public void Time2_with_fractions_and_negatives(bool negative, int h, int mi, int s, int micro, int fsp)
    {
        var value = Assert.IsType<TimeSpan>(Decode(Time2(negative, h, mi, s, micro, fsp), ColumnType.Time2, (ushort)fsp));
        var expected = new TimeSpan(0, h, mi, s).Add(TimeSpan.FromTicks(micro * 10L));
        Assert.Equal(negative ? -expected : expected, value);
    }

    [Fact]
    public void Year_bit_enum_set()
    {
        Assert.Equal(2155, Decode([255], ColumnType.Year, 0));
        Assert.Equal(0, Decode([0], ColumnType.Year, 0));
        // BIT(10): metadata low byte bits % 8 = 2, high byte whole bytes = 1; value big-endian.
        Assert.Equal(0x3FFUL, Decode([0x03, 0xFF], ColumnType.Bit, (1 << 8) | 2));
        Assert.Equal(ulong.MaxValue, Decode([.. Enumerable.Repeat((byte)0xFF, 8)], ColumnType.Bit, 8 << 8));
        var enumColumn = new ColumnSchema("e", "enum", false, "utf8mb4", ["small", "médium", "large"]);
        Assert.Equal("médium", Decode([2], ColumnType.String, (247 << 8) | 1, enumColumn));
        Assert.Equal("", Decode([0], ColumnType.String, (247 << 8) | 1, enumColumn));
        Assert.Equal(3, Decode([3, 0], ColumnType.String, (247 << 8) | 2));
        var setColumn = new ColumnSchema("s", "set", false, "utf8mb4", ["a", "b", "c"]);
        Assert.Equal("a,c", Decode([5], ColumnType.String, (248 << 8) | 1, setColumn));
        Assert.Equal("", Decode([0], ColumnType.String, (248 << 8) | 1, setColumn));
    }

    [Fact]
    public void Varchar_length_prefix_depends_on_max_bytes()
    {
        Assert.Equal("abc", Decode([3, .. "abc"u8], ColumnType.VarChar, 255, null, Encoding.UTF8));
        var long300 = new string('é', 150);
        Assert.Equal(long300, Decode([44, 1, .. Encoding.UTF8.GetBytes(long300)], ColumnType.VarChar, 1200, null, Encoding.UTF8));
        Assert.Equal(new byte[] { 0, 1, 2 }, Decode([3, 0, 1, 2], ColumnType.VarChar, 10));
    }

    // CHAR(100) in utf8mb4 holds up to 400 bytes: field.cc stores real_type ^ ((400 & 0x300) >> 4) and 400 & 0xFF.
    [Fact]
    public void Char_longer_than_255_bytes_hides_length_bits_in_the_type_byte()
    {
        var text = new string('ü', 100);
        var bytes = Encoding.UTF8.GetBytes(text);
        var meta = (ushort)(((0xFE ^ ((400 & 0x300) >> 4)) << 8) | (400 & 0xFF));
        Assert.Equal(text, Decode([(byte)bytes.Length, (byte)(bytes.Length >> 8), .. bytes], ColumnType.String, meta, null, Encoding.UTF8));
        Assert.Equal("ab", Decode([2, .. "ab"u8], ColumnType.String, (0xFE << 8) | 40, null, Encoding.UTF8));
        Assert.Equal(new byte[] { 1, 0 }, Decode([2, 1, 0], ColumnType.String, (0xFE << 8) | 16));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Blob_and_text_of_every_size(int prefix)
    {
        var payload = Enumerable.Range(0, 200).Select(i => (byte)('a' + (i % 26))).ToArray();
        var bytes = new byte[prefix + payload.Length];
        for (var i = 0; i < prefix; i++)
        {
            bytes[i] = (byte)(payload.Length >> (8 * i));
        }

        payload.CopyTo(bytes, prefix);
        Assert.Equal(payload, Decode(bytes, ColumnType.Blob, (ushort)prefix));
        Assert.Equal(Encoding.ASCII.GetString(payload), Decode(bytes, ColumnType.Blob, (ushort)prefix, null, Encoding.UTF8));
    }

    [Fact]
    public void Geometry_is_srid_plus_wkb()
    {
        byte[] point = [0, 0, 0, 0, 1, 1, 0, 0, 0, .. BitConverter.GetBytes(1.0), .. BitConverter.GetBytes(2.0)];
        Assert.Equal(point, Decode([(byte)point.Length, 0, 0, 0, .. point], ColumnType.Geometry, 4));
    }

    [Fact]
    public void Json_binary_renders_as_mysql_prints_it()
    {
        var doc = new SortedDictionary<string, object?>(StringComparer.Ordinal)
        {
            ["a"] = (short)1,
            ["b"] = new object?[] { true, "x\"y", null, 2.5, (long)1 << 40 },
            ["c"] = new SortedDictionary<string, object?>(StringComparer.Ordinal) { ["é"] = false },
        };
        var json = Json(doc);
        var value = Decode([(byte)json.Length, (byte)(json.Length >> 8), 0, 0, .. json], ColumnType.Json, 4);
        Assert.Equal("{\"a\": 1, \"b\": [true, \"x\\\"y\", null, 2.5, 1099511627776], \"c\": {\"é\": false}}", value);
        Assert.Equal("\"plain\"", Decode([7, 0, 0, 0, .. Json("plain")], ColumnType.Json, 4));
        Assert.Equal("null", Decode([0, 0, 0, 0], ColumnType.Json, 4));
    }

    [Fact]
    public void Json_with_offsets_outside_the_document_is_an_error_not_garbage()
    {
        byte[] bad = [0x00, 1, 0, 200, 0, 11, 0, 1, 0, 0x0C, 60, 0];
        Assert.Throws<MySqlProtocolException>(() => Decode([(byte)bad.Length, 0, 0, 0, .. bad], ColumnType.Json, 4));
    }

    // Large format (json_binary.h): u32 count and size, key entries u32 offset + u16 length, value entries
    // type + u32, with int32/uint32 inlined as well.
    [Fact]
    public void Json_binary_large_object_and_array()
    {
        var doc = new EventBytes().U8(0x01).U32(2).U32(35)
            .U32(30).U16(1).U32(31).U16(1)
            .U8(0x07).U32(unchecked((uint)-100000)).U8(0x0C).U32(32)
            .Text("k").Text("s").U8(2).Text("hi").ToArray();
        Assert.Equal("{\"k\": -100000, \"s\": \"hi\"}", Decode([(byte)doc.Length, 0, 0, 0, .. doc], ColumnType.Json, 4));
        var array = new EventBytes().U8(0x03).U32(2).U32(18).U8(0x08).U32(4000000000).U8(0x04).U32(2).ToArray();
        Assert.Equal("[4000000000, false]", Decode([(byte)array.Length, 0, 0, 0, .. array], ColumnType.Json, 4));
    }
}
