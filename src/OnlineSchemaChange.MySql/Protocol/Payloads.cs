namespace OnlineSchemaChange.MySql.Protocol;

[Flags]
public enum ClientCapabilities : uint
{
    None = 0,
    LongPassword = 0x1,
    FoundRows = 0x2,
    LongFlag = 0x4,
    ConnectWithDatabase = 0x8,
    Protocol41 = 0x200,
    Ssl = 0x800,
    Transactions = 0x2000,
    SecureConnection = 0x8000,
    MultiStatements = 0x10000,
    MultiResults = 0x20000,
    PluginAuth = 0x80000,
    PluginAuthLengthEncodedClientData = 0x200000,
}

/// <summary>Initial handshake packet, protocol version 10.</summary>
public sealed record HandshakeV10(string ServerVersion, uint ConnectionId, ClientCapabilities Capabilities, byte[] Nonce, string AuthPluginName)
{
    public bool IsMariaDb => ServerVersion.Contains("MariaDB", StringComparison.OrdinalIgnoreCase);

    public static HandshakeV10 Parse(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > 0 && payload[0] == 0xFF)
        {
            throw ErrorPacket.Parse(payload).ToException();
        }

        var reader = new PacketReader(payload);
        var protocolVersion = reader.ReadByte();
        if (protocolVersion != 10)
        {
            throw new MySqlProtocolException($"Unsupported handshake protocol version {protocolVersion}.");
        }

        var serverVersion = reader.ReadNullTerminatedString();
        var connectionId = reader.ReadUInt32();
        var nonce1 = reader.ReadBytes(8);
        reader.Skip(1);
        var capabilities = (uint)reader.ReadUInt16();
        reader.Skip(3); // character set, status flags
        capabilities |= (uint)reader.ReadUInt16() << 16;
        var authDataLength = reader.ReadByte();
        reader.Skip(10);
        var flags = (ClientCapabilities)capabilities;
        var nonce = nonce1.ToArray();
        if (flags.HasFlag(ClientCapabilities.SecureConnection))
        {
            // Part 2 is max(13, length - 8) bytes including a trailing NUL; the scramble is 20 bytes in all.
            var part2Length = Math.Max(13, authDataLength - 8);
            var part2 = reader.ReadBytes(Math.Min(part2Length, reader.Remaining));
            if (part2.Length > 0 && part2[^1] == 0)
            {
                part2 = part2[..^1];
            }

            nonce = [.. nonce1, .. part2];
        }

        var plugin = flags.HasFlag(ClientCapabilities.PluginAuth) && !reader.IsAtEnd ? reader.ReadNullTerminatedString() : AuthPlugins.NativePassword;
        return new HandshakeV10(serverVersion, connectionId, flags, nonce, plugin);
    }
}

public readonly record struct OkPacket(ulong AffectedRows, ulong LastInsertId)
{
    public static OkPacket Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PacketReader(payload);
        reader.Skip(1);
        return new OkPacket(reader.ReadLengthEncodedInteger(), reader.ReadLengthEncodedInteger());
    }
}

public sealed record ErrorPacket(ushort ErrorCode, string SqlState, string Message)
{
    public static ErrorPacket Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PacketReader(payload);
        reader.Skip(1);
        var code = reader.ReadUInt16();
        var state = "HY000";
        if (!reader.IsAtEnd && reader.PeekByte() == (byte)'#')
        {
            reader.Skip(1);
            state = System.Text.Encoding.ASCII.GetString(reader.ReadBytes(5));
        }

        return new ErrorPacket(code, state, reader.ReadStringToEnd());
    }

    public MySqlServerException ToException() => new(ErrorCode, SqlState, Message);
}

/// <summary>0xFE during authentication: the server wants another plugin, with a fresh nonce.</summary>
public sealed record AuthSwitchRequest(string PluginName, byte[] Nonce)
{
    public static AuthSwitchRequest Parse(ReadOnlySpan<byte> payload)
    {
        var reader = new PacketReader(payload);
        reader.Skip(1);
        var plugin = reader.ReadNullTerminatedString();
        var data = reader.ReadToEnd();
        if (data.Length > 0 && data[^1] == 0)
        {
            data = data[..^1];
        }

        return new AuthSwitchRequest(plugin, data.ToArray());
    }
}

public static class PacketKinds
{
    public const byte Ok = 0x00;
    public const byte Error = 0xFF;
    public const byte Eof = 0xFE;
    public const byte AuthMoreData = 0x01;

    /// <summary>An EOF packet is 0xFE with fewer than 9 bytes; a longer 0xFE-led payload is data.</summary>
    public static bool IsEof(ReadOnlySpan<byte> payload) => payload.Length is > 0 and < 9 && payload[0] == Eof;
}
