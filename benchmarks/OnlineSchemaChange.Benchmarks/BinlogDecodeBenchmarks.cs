using BenchmarkDotNet.Attributes;
using OnlineSchemaChange.MySql.Binlog;

namespace OnlineSchemaChange.Benchmarks;

/// <summary>Decoding sysbench-shaped UPDATE row events on one thread. Each operation is one row image (an update
/// event carries two), so Mean is time per row image and Allocated is bytes per row image. The baseline only
/// checks each event's CRC32, the least any verifying decoder must do, so Ratio says what decoding adds.</summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class BinlogDecodeBenchmarks
{
    private const int Events = 10_000;
    private const int RowImages = Events * 2;

    private byte[][] _updates = [];
    private BinlogEventDecoder _withSchema = null!;
    private BinlogEventDecoder _withoutSchema = null!;
    private BinlogEventDecoder _filtered = null!;

    private sealed class OneTable : ITableSchemaProvider
    {
        public TableSchema? Find(string database, string table) => SysbenchEvents.Schema;
    }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _updates = [.. Enumerable.Range(1, Events).Select(i => SysbenchEvents.Update(random, i))];
        _withSchema = Prepared(new BinlogEventDecoder(new OneTable(), "binlog.000001"));
        _withoutSchema = Prepared(new BinlogEventDecoder(null, "binlog.000001"));
        _filtered = Prepared(new BinlogEventDecoder(new OneTable(), "binlog.000001") { TableFilter = _ => false });
    }

    private static BinlogEventDecoder Prepared(BinlogEventDecoder decoder)
    {
        decoder.Decode(SysbenchEvents.FormatDescription());
        decoder.Decode(SysbenchEvents.TableMap());
        return decoder;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = RowImages)]
    public uint Crc32Only()
    {
        uint sum = 0;
        foreach (var e in _updates)
        {
            sum ^= System.IO.Hashing.Crc32.HashToUInt32(e);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = RowImages)]
    public int DecodeTypedValues() => Decode(_withSchema);

    [Benchmark(OperationsPerInvoke = RowImages)]
    public int DecodeWithoutSchema() => Decode(_withoutSchema);

    [Benchmark(OperationsPerInvoke = RowImages)]
    public int SkipFilteredTable() => Decode(_filtered);

    private int Decode(BinlogEventDecoder decoder)
    {
        var images = 0;
        foreach (var e in _updates)
        {
            if (decoder.Decode(e) is RowsEvent rows)
            {
                images += rows.Rows.Length * 2;
            }
        }

        return images;
    }
}
