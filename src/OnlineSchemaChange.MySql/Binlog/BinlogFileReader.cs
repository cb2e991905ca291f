using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>Decodes a binlog file from disk: the 4-byte magic 0xFE 'bin', then events back to back.</summary>
public static class BinlogFileReader
{
    private static readonly byte[] Magic = [0xFE, (byte)'b', (byte)'i', (byte)'n'];

    /// <param name="onTableMap">Awaited after each TABLE_MAP before the next event is decoded, so a schema provider
    /// can load the table's columns before its rows.</param>
    public static async IAsyncEnumerable<BinlogEvent> ReadAsync(string path, ITableSchemaProvider? schemas,
        Func<TableMapEvent, CancellationToken, Task>? onTableMap, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        var reader = PipeReader.Create(file, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024));
        var decoder = new BinlogEventDecoder(schemas, Path.GetFileName(path));
        var position = 0L;
        var scratch = Array.Empty<byte>();
        try
        {
            var magicChecked = false;
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken);
                var buffer = result.Buffer;
                if (!magicChecked)
                {
                    if (buffer.Length < Magic.Length)
                    {
                        if (result.IsCompleted)
                        {
                            throw new BinlogDecodeException($"{path} is not a binlog file: shorter than its magic number.");
                        }

                        reader.AdvanceTo(buffer.Start, buffer.End);
                        continue;
                    }

                    if (!buffer.Slice(0, Magic.Length).ToArray().AsSpan().SequenceEqual(Magic))
                    {
                        throw new BinlogDecodeException($"{path} is not a binlog file: it does not start with 0xFE 'bin'.");
                    }

                    buffer = buffer.Slice(Magic.Length);
                    position = Magic.Length;
                    magicChecked = true;
                }

                var events = new List<BinlogEvent>();
                TableMapEvent? lastMap = null;
                while (lastMap is null && TryReadEvent(ref buffer, out var eventBytes))
                {
                    ReadOnlySpan<byte> span;
                    if (eventBytes.IsSingleSegment)
                    {
                        span = eventBytes.FirstSpan;
                    }
                    else
                    {
                        if (scratch.Length < eventBytes.Length)
                        {
                            scratch = new byte[Math.Max(eventBytes.Length, scratch.Length * 2)];
                        }

                        eventBytes.CopyTo(scratch);
                        span = scratch.AsSpan(0, (int)eventBytes.Length);
                    }

                    var decoded = decoder.Decode(span);
                    events.Add(decoded);
                    position += eventBytes.Length;
                    lastMap = onTableMap is not null ? decoded as TableMapEvent : null;
                }

                reader.AdvanceTo(buffer.Start, lastMap is null ? buffer.End : buffer.Start);
                if (lastMap is not null)
                {
                    await onTableMap!(lastMap, cancellationToken);
                }

                foreach (var decoded in events)
                {
                    yield return decoded;
                }

                if (result.IsCompleted && lastMap is null)
                {
                    if (buffer.Length > 0)
                    {
                        throw new BinlogDecodeException($"{path}:{position}: file ends inside an event ({buffer.Length} bytes left).");
                    }

                    yield break;
                }
            }
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    /// <summary>Slices one whole event off the front; false (consuming nothing) when the buffer ends first.</summary>
    public static bool TryReadEvent(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> eventBytes)
    {
        eventBytes = default;
        if (buffer.Length < BinlogEventHeader.Length)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[BinlogEventHeader.Length];
        buffer.Slice(0, BinlogEventHeader.Length).CopyTo(header);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header[9..]);
        if (length < BinlogEventHeader.Length)
        {
            throw new BinlogDecodeException($"Event length {length} is shorter than the event header.");
        }

        if (buffer.Length < length)
        {
            return false;
        }

        eventBytes = buffer.Slice(0, length);
        buffer = buffer.Slice(length);
        return true;
    }
}
