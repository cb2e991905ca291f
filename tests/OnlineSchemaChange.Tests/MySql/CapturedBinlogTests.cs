using System.Diagnostics;
using System.Numerics;
using System.Text;
using OnlineSchemaChange.MySql.Binlog;

namespace OnlineSchemaChange.Tests.MySql;

/// <summary>
/// Data/mariadb-10.11-types.binlog was captured from MariaDB 10.11 (binlog_format=ROW, binlog_row_image=FULL,
/// binlog_checksum=CRC32, server character set latin1) after these statements:
/// <code>
/// CREATE TABLE cap.types (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT UNSIGNED, bi BIGINT, f FLOAT, d DOUBLE,
///   dec1 DECIMAL(10,3), dec2 DECIMAL(40,10), dt DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(2), dte DATE, y YEAR, ch CHAR(70), vc VARCHAR(300),
///   bn BINARY(4), vb VARBINARY(20), tx TEXT, bl MEDIUMBLOB, e ENUM('x','y','z'), s SET('p','q','r'), b BIT(12), j JSON, g GEOMETRY NULL);
/// INSERT INTO cap.types VALUES (1, -128, 255, -32768, 16777215, -9223372036854775808, 1.5, -2.5e100, -1234567.891, '-123456789012345678901234567890.0123456789',
///   '2024-02-29 13:14:15.123456', '2038-01-19 03:14:07.999', '-838:59:58.99', '1000-01-01', 2155, REPEAT('ü', 70), REPEAT('x', 300),
///   'ab', 0x00FF10, 'text ünïcode', REPEAT('b', 1000), 'z', 'p,r', b'101010101010', '{"k": [1, 2.5, "s", null, true]}', ST_GeomFromText('POINT(1 2)'));  -- session time zone UTC
/// INSERT INTO cap.types (id) VALUES (2);
/// UPDATE cap.types SET vc = 'updated', ti = 5 WHERE id = 1;
/// BEGIN; INSERT INTO cap.types (id, ch) VALUES (3, 'a'), (4, 'b'); DELETE FROM cap.types WHERE id = 2; COMMIT;
/// ALTER TABLE cap.types ADD COLUMN extra INT;
/// DELETE FROM cap.types;
/// </code>
/// The expected values below are those statements' values, not the decoder's output.
/// </summary>
public sealed class CapturedBinlogTests
{
    private static readonly string CapturePath = Path.Combine(AppContext.BaseDirectory, "MySql", "Data", "mariadb-10.11-types.binlog");

    private sealed class CapSchema : ITableSchemaProvider
    {
        public static readonly TableSchema Types = new("cap", "types",
        [
            C("id", "int"), C("ti", "tinyint"), C("tu", "tinyint", unsigned: true), C("si", "smallint"), C("mi", "mediumint", unsigned: true),
            C("bi", "bigint"), C("f", "float"), C("d", "double"), C("dec1", "decimal"), C("dec2", "decimal"), C("dt", "datetime"),
            C("ts", "timestamp"), C("tm", "time"), C("dte", "date"), C("y", "year"), C("ch", "char", "latin1"), C("vc", "varchar", "latin1"),
            C("bn", "binary"), C("vb", "varbinary"), C("tx", "text", "latin1"), C("bl", "mediumblob"),
            new ColumnSchema("e", "enum", false, "latin1", ["x", "y", "z"]), new ColumnSchema("s", "set", false, "latin1", ["p", "q", "r"]),
            C("b", "bit"), C("j", "longtext", "utf8mb4"), C("g", "geometry"),
        ]);

        private static ColumnSchema C(string name, string type, string? charset = null, bool unsigned = false) => new(name, type, unsigned, charset);

        public TableSchema? Find(string database, string table) => database == "cap" && table == "types" ? Types : null;
    }

    private static async Task<List<BinlogEvent>> ReadAllAsync(ITableSchemaProvider? schemas)
    {
        var events = new List<BinlogEvent>();
        await foreach (var e in BinlogFileReader.ReadAsync(CapturePath, schemas, null, CancellationToken.None))
        {
            events.Add(e);
        }

        return events;
    }

    [Fact]
    public async Task Captured_file_decodes_to_the_values_the_statements_wrote()
    {
        var events = await ReadAllAsync(new CapSchema());
        var rows = events.OfType<RowsEvent>().Where(r => r.Table.Table == "types").ToList();
        Assert.Equal(
            [RowsEventKind.Insert, RowsEventKind.Insert, RowsEventKind.Update, RowsEventKind.Insert, RowsEventKind.Delete, RowsEventKind.Delete],
            rows.Select(r => r.Kind));
        Assert.Equal([1, 1, 1, 2, 1, 3], rows.Select(r => r.Rows.Length));

        var first = rows[0].Rows[0].After!;
        Assert.Equal(1, first[0]);
        Assert.Equal((sbyte)-128, first[1]);
        Assert.Equal((byte)255, first[2]);
        Assert.Equal((short)-32768, first[3]);
        Assert.Equal(16777215u, first[4]);
        Assert.Equal(long.MinValue, first[5]);
        Assert.Equal(1.5f, first[6]);
        Assert.Equal(-2.5e100, first[7]);
        Assert.Equal(-1234567.891m, first[8]);
        Assert.Equal(new ExactDecimal(BigInteger.Parse("-1234567890123456789012345678900123456789", System.Globalization.CultureInfo.InvariantCulture), 10), first[9]);
        Assert.Equal(new DateTime(2024, 2, 29, 13, 14, 15).AddTicks(1234560), first[10]);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(2147483647).AddMilliseconds(999), first[11]);
        Assert.Equal(-new TimeSpan(0, 838, 59, 58, 990), first[12]);
        Assert.Equal(new DateOnly(1000, 1, 1), first[13]);
        Assert.Equal(2155, first[14]);
        Assert.Equal(new string('ü', 70), first[15]);
        Assert.Equal(new string('x', 300), first[16]);
        Assert.Equal(new byte[] { (byte)'a', (byte)'b', 0, 0 }, first[17]);
        Assert.Equal(new byte[] { 0x00, 0xFF, 0x10 }, first[18]);
        Assert.Equal("text ünïcode", first[19]);
        Assert.Equal(Enumerable.Repeat((byte)'b', 1000).ToArray(), first[20]);
        Assert.Equal("z", first[21]);
        Assert.Equal("p,r", first[22]);
        Assert.Equal(0b101010101010UL, first[23]);
        Assert.Equal("{\"k\": [1, 2.5, \"s\", null, true]}", first[24]);
        Assert.Equal((byte[])[0, 0, 0, 0, 1, 1, 0, 0, 0, .. BitConverter.GetBytes(1.0), .. BitConverter.GetBytes(2.0)], first[25]);

        Assert.Equal(new object?[] { 2 }.Concat(Enumerable.Repeat<object?>(null, 25)), rows[1].Rows[0].After);
        Assert.Equal("updated", rows[2].Rows[0].After![16]);
        Assert.Equal((sbyte)5, rows[2].Rows[0].After![1]);
        Assert.Equal((sbyte)-128, rows[2].Rows[0].Before![1]);
        Assert.Equal(rows[3].Coordinates.Gtid, rows[4].Coordinates.Gtid); // one transaction
        Assert.Equal(27, rows[5].Table.ColumnCount); // after ALTER ... ADD COLUMN
        Assert.Null(rows[5].Schema); // the schema given describes 26 columns: not applied to 27
    }

    [Fact]
    public async Task Every_event_knows_its_end_position_and_file()
    {
        var events = await ReadAllAsync(null);
        var length = new FileInfo(CapturePath).Length;
        Assert.Equal(length, events[^1].Coordinates.Position);
        Assert.All(events, e => Assert.Equal("mariadb-10.11-types.binlog", e.Coordinates.File));
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.Coordinates.Position < p.Second.Coordinates.Position || p.Second.Coordinates.Position == 0));
    }

    private static List<byte[]> SplitEvents(byte[] file)
    {
        var events = new List<byte[]>();
        var offset = 4;
        while (offset < file.Length)
        {
            var length = BitConverter.ToInt32(file, offset + 9);
            events.Add(file[offset..(offset + length)]);
            offset += length;
        }

        return events;
    }

    /// <summary>Random mutations of the captured events, decoded with checksums off so they reach the decoders:
    /// each must decode or fail with a <see cref="BinlogDecodeException"/> naming file:position; never another
    /// exception, a hang or a runaway allocation. Bounded in count and time.</summary>
    [Fact]
    public void Fuzzed_events_fail_cleanly()
    {
        var events = SplitEvents(File.ReadAllBytes(CapturePath));
        var random = new Random(20261125);
        var watch = Stopwatch.StartNew();
        var failures = 0;
        var iterations = 0;
        for (; iterations < 4000 && watch.Elapsed < TimeSpan.FromSeconds(20); iterations++)
        {
            var decoder = new BinlogEventDecoder(new CapSchema(), "fuzz.000001") { VerifyChecksums = false };
            var target = random.Next(1, events.Count);
            for (var i = 0; i < events.Count; i++)
            {
                var bytes = i == target ? Mutate(events[i], random) : events[i];
                try
                {
                    decoder.Decode(bytes);
                }
                catch (BinlogDecodeException e)
                {
                    Assert.Contains("fuzz.000001:", e.Message, StringComparison.Ordinal);
                    failures++;
                    break;
                }
            }
        }

        Assert.True(iterations >= 500, $"only {iterations} iterations in the time bound");
        Assert.True(failures > iterations / 10, $"mutations should mostly be detected: {failures} of {iterations}");
    }

    /// <summary>With checksums verified, no mutated event decodes at all: corruption is never handed on as data.</summary>
    [Fact]
    public void Checksums_catch_every_mutation()
    {
        var events = SplitEvents(File.ReadAllBytes(CapturePath));
        var random = new Random(7);
        for (var iteration = 0; iteration < 1000; iteration++)
        {
            var decoder = new BinlogEventDecoder(new CapSchema(), "crc.000001");
            decoder.Decode(events[0]);
            var target = random.Next(1, events.Count);
            for (var i = 1; i < target; i++)
            {
                decoder.Decode(events[i]);
            }

            var mutated = Mutate(events[target], random);
            if (mutated.AsSpan().SequenceEqual(events[target]))
            {
                continue;
            }

            Assert.Throws<BinlogDecodeException>(() => decoder.Decode(mutated));
        }
    }

    private static byte[] Mutate(byte[] original, Random random)
    {
        var bytes = (byte[])original.Clone();
        switch (random.Next(4))
        {
            case 0:
                return bytes[..random.Next(0, bytes.Length)];
            case 1:
                for (var i = random.Next(1, 5); i > 0; i--)
                {
                    bytes[random.Next(19, bytes.Length)] ^= (byte)random.Next(1, 256);
                }

                return bytes;
            case 2:
                bytes[random.Next(19, bytes.Length)] = (byte)(random.Next(2) == 0 ? 0xFF : 0x00);
                return bytes;
            default:
                var at = random.Next(19, bytes.Length);
                var extra = new byte[random.Next(1, 16)];
                random.NextBytes(extra);
                var grown = (byte[])[.. bytes[..at], .. extra, .. bytes[at..]];
                BitConverter.GetBytes(grown.Length).CopyTo(grown, 9); // keep the length field consistent
                return grown;
        }
    }

    [Fact]
    public async Task A_file_without_the_magic_number_is_refused()
    {
        var path = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(path, Encoding.ASCII.GetBytes("not a binlog"));
            var ex = await Assert.ThrowsAsync<BinlogDecodeException>(async () =>
            {
                await foreach (var _ in BinlogFileReader.ReadAsync(path, null, null, CancellationToken.None))
                {
                }
            });
            Assert.Contains("not a binlog file", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
