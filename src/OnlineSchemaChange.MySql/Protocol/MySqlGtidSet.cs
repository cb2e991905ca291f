using System.Buffers.Binary;
using System.Globalization;

namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>A MySQL GTID set such as "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:11,...". Intervals are kept
/// inclusive here and written end-exclusive on the wire, as COM_BINLOG_DUMP_GTID expects.</summary>
public sealed class MySqlGtidSet
{
    private readonly SortedDictionary<Guid, List<(long Start, long End)>> _intervals = [];

    public static MySqlGtidSet Parse(string text)
    {
        var set = new MySqlGtidSet();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var pieces = part.Split(':');
            if (pieces.Length < 2 || !Guid.TryParse(pieces[0], out var sid))
            {
                throw new FormatException($"Invalid GTID set element '{part}'.");
            }

            foreach (var range in pieces.Skip(1))
            {
                var bounds = range.Split('-');
                var start = long.Parse(bounds[0], CultureInfo.InvariantCulture);
                var end = bounds.Length > 1 ? long.Parse(bounds[1], CultureInfo.InvariantCulture) : start;
                if (start < 1 || end < start)
                {
                    throw new FormatException($"Invalid GTID interval '{range}'.");
                }

                set.Add(sid, start, end);
            }
        }

        return set;
    }

    public void Add(Guid sid, long start, long end)
    {
        if (!_intervals.TryGetValue(sid, out var list))
        {
            _intervals[sid] = list = [];
        }

        list.Add((start, end));
        list.Sort();
        var merged = new List<(long Start, long End)>();
        foreach (var interval in list)
        {
            if (merged.Count > 0 && interval.Start <= merged[^1].End + 1)
            {
                merged[^1] = (merged[^1].Start, Math.Max(merged[^1].End, interval.End));
            }
            else
            {
                merged.Add(interval);
            }
        }

        _intervals[sid] = merged;
    }

    public byte[] Encode()
    {
        var size = 8 + _intervals.Sum(kv => 16 + 8 + (kv.Value.Count * 16));
        var bytes = new byte[size];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt64LittleEndian(span, (ulong)_intervals.Count);
        var offset = 8;
        foreach (var (sid, list) in _intervals)
        {
            sid.TryWriteBytes(span[offset..], bigEndian: true, out _);
            offset += 16;
            BinaryPrimitives.WriteUInt64LittleEndian(span[offset..], (ulong)list.Count);
            offset += 8;
            foreach (var (start, end) in list)
            {
                BinaryPrimitives.WriteInt64LittleEndian(span[offset..], start);
                BinaryPrimitives.WriteInt64LittleEndian(span[(offset + 8)..], end + 1);
                offset += 16;
            }
        }

        return bytes;
    }

    public override string ToString() => string.Join(",", _intervals.Select(kv =>
        kv.Key.ToString("D") + ":" + string.Join(":", kv.Value.Select(i => i.Start == i.End
            ? i.Start.ToString(CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{i.Start}-{i.End}")))));
}
