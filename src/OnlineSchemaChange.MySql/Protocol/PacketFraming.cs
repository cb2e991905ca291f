using System.Buffers;

namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>MySQL packet framing: 3-byte little-endian payload length, 1-byte sequence id, payload. A payload of
/// exactly 0xFFFFFF bytes means the logical packet continues in the next frame.</summary>
public static class PacketFraming
{
    public const int HeaderLength = 4;
    public const int MaxChunkLength = 0xFFFFFF;

    /// <summary>Finds one complete logical packet at the start of <paramref name="buffer"/>. Returns false, without
    /// consuming anything, when the buffer ends before the packet does (the caller reads more and tries again).
    /// A single-frame payload is a slice of the buffer; only a continued (16 MB+) packet is joined into a new array.</summary>
    public static bool TryReadPacket(in ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> payload,
        out byte lastSequenceId, out SequencePosition consumed)
    {
        payload = default;
        lastSequenceId = 0;
        consumed = buffer.Start;
        var reader = new SequenceReader<byte>(buffer);
        long total = 0;
        var frames = 0;
        Span<byte> header = stackalloc byte[HeaderLength];
        while (true)
        {
            if (!reader.TryCopyTo(header))
            {
                return false;
            }

            var length = header[0] | (header[1] << 8) | (header[2] << 16);
            if (reader.Remaining < HeaderLength + length)
            {
                return false;
            }

            reader.Advance(HeaderLength + length);
            lastSequenceId = header[3];
            total += length;
            frames++;
            if (length < MaxChunkLength)
            {
                break;
            }
        }

        consumed = reader.Position;
        var packet = buffer.Slice(buffer.Start, consumed);
        payload = frames == 1 ? packet.Slice(HeaderLength) : Join(packet, total);
        return true;
    }

    private static ReadOnlySequence<byte> Join(ReadOnlySequence<byte> frames, long total)
    {
        var joined = new byte[total];
        var written = 0;
        Span<byte> header = stackalloc byte[HeaderLength];
        while (frames.Length > 0)
        {
            frames.Slice(0, HeaderLength).CopyTo(header);
            var length = header[0] | (header[1] << 8) | (header[2] << 16);
            frames.Slice(HeaderLength, length).CopyTo(joined.AsSpan(written));
            written += length;
            frames = frames.Slice(HeaderLength + length);
        }

        return new ReadOnlySequence<byte>(joined);
    }
}
