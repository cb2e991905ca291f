using System.Buffers.Binary;
using System.Text;

namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>Forward-only reader over one packet or event body. Every read is bounds-checked and throws
/// <see cref="MySqlProtocolException"/> on truncated input, so a corrupt event never yields garbage.</summary>
public ref struct PacketReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _offset;

    public PacketReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _offset = 0;
    }

    public readonly int Offset => _offset;
    public readonly int Remaining => _data.Length - _offset;
    public readonly bool IsAtEnd => _offset >= _data.Length;
    public readonly ReadOnlySpan<byte> RemainingSpan => _data[_offset..];

    public byte ReadByte() => Take(1)[0];
    public byte PeekByte() => Remaining >= 1 ? _data[_offset] : throw Truncated(1);
    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
    public uint ReadUInt24()
    {
        var s = Take(3);
        return (uint)(s[0] | (s[1] << 8) | (s[2] << 16));
    }

    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
    public ulong ReadUInt48()
    {
        var s = Take(6);
        return BinaryPrimitives.ReadUInt32LittleEndian(s) | ((ulong)BinaryPrimitives.ReadUInt16LittleEndian(s[4..]) << 32);
    }

    public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    /// <summary>Little-endian unsigned integer of 1 to 8 bytes.</summary>
    public ulong ReadUIntLittleEndian(int width)
    {
        var s = Take(width);
        ulong value = 0;
        for (var i = width - 1; i >= 0; i--)
        {
            value = (value << 8) | s[i];
        }

        return value;
    }

    /// <summary>Length-encoded integer: below 0xFB one byte, 0xFC u16, 0xFD u24, 0xFE u64. 0xFB (NULL in a
    /// resultset row) is rejected here; <see cref="TryReadLengthEncodedNull"/> handles it where it is legal.</summary>
    public ulong ReadLengthEncodedInteger()
    {
        var first = ReadByte();
        return first switch
        {
            < 0xFB => first,
            0xFC => ReadUInt16(),
            0xFD => ReadUInt24(),
            0xFE => ReadUInt64(),
            _ => throw new MySqlProtocolException($"Invalid length-encoded integer prefix 0x{first:X2} at offset {_offset - 1}."),
        };
    }

    public int ReadLengthEncodedLength()
    {
        var value = ReadLengthEncodedInteger();
        return value <= int.MaxValue ? (int)value : throw new MySqlProtocolException($"Length {value} exceeds the supported maximum.");
    }

    public bool TryReadLengthEncodedNull()
    {
        if (Remaining > 0 && _data[_offset] == 0xFB)
        {
            _offset++;
            return true;
        }

        return false;
    }

    public ReadOnlySpan<byte> ReadLengthEncodedBytes() => Take(ReadLengthEncodedLength());
    public string ReadLengthEncodedString() => Encoding.UTF8.GetString(ReadLengthEncodedBytes());

    public ReadOnlySpan<byte> ReadNullTerminatedBytes()
    {
        var rest = _data[_offset..];
        var end = rest.IndexOf((byte)0);
        if (end < 0)
        {
            throw new MySqlProtocolException($"Missing NUL terminator for the string at offset {_offset}.");
        }

        _offset += end + 1;
        return rest[..end];
    }

    public string ReadNullTerminatedString() => Encoding.UTF8.GetString(ReadNullTerminatedBytes());

    public ReadOnlySpan<byte> ReadBytes(int count) => Take(count);
    public ReadOnlySpan<byte> ReadToEnd() => Take(Remaining);
    public string ReadStringToEnd() => Encoding.UTF8.GetString(ReadToEnd());
    public void Skip(int count) => Take(count);

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > _data.Length - _offset)
        {
            throw Truncated(count);
        }

        var slice = _data.Slice(_offset, count);
        _offset += count;
        return slice;
    }

    private readonly MySqlProtocolException Truncated(int wanted) =>
        new($"Truncated data: wanted {wanted} bytes at offset {_offset}, {Remaining} left.");
}
