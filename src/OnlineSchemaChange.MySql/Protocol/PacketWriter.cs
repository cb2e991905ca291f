using System.Buffers.Binary;
using System.Text;

namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>Builds one outgoing payload. Commands we send are small (handshake, setup queries, dump requests),
/// so a growable array is enough.</summary>
public sealed class PacketWriter
{
    private byte[] _buffer = new byte[256];
    private int _length;

    public ReadOnlyMemory<byte> Payload => _buffer.AsMemory(0, _length);

    public PacketWriter WriteByte(byte value)
    {
        Grow(1)[0] = value;
        return this;
    }

    public PacketWriter WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(Grow(2), value);
        return this;
    }

    public PacketWriter WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(Grow(4), value);
        return this;
    }

    public PacketWriter WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(Grow(8), value);
        return this;
    }

    public PacketWriter WriteLengthEncodedInteger(ulong value)
    {
        switch (value)
        {
            case < 0xFB: return WriteByte((byte)value);
            case <= 0xFFFF: WriteByte(0xFC); return WriteUInt16((ushort)value);
            case <= 0xFFFFFF:
                WriteByte(0xFD);
                var s = Grow(3);
                s[0] = (byte)value; s[1] = (byte)(value >> 8); s[2] = (byte)(value >> 16);
                return this;
            default: WriteByte(0xFE); return WriteUInt64(value);
        }
    }

    public PacketWriter WriteBytes(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Grow(bytes.Length));
        return this;
    }

    public PacketWriter WriteZeros(int count)
    {
        Grow(count).Clear();
        return this;
    }

    public PacketWriter WriteString(string value)
    {
        var count = Encoding.UTF8.GetByteCount(value);
        Encoding.UTF8.GetBytes(value, Grow(count));
        return this;
    }

    public PacketWriter WriteNullTerminatedString(string value) => WriteString(value).WriteByte(0);

    private Span<byte> Grow(int count)
    {
        if (_length + count > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + count));
        }

        var span = _buffer.AsSpan(_length, count);
        _length += count;
        return span;
    }
}
