using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.Tests.MySql;

// Layouts: MySQL client/server protocol documentation (Protocol::LengthEncodedInteger, Protocol::Packet,
// Protocol::HandshakeV10) and the authentication method pages for mysql_native_password and caching_sha2_password.
public sealed class ProtocolTests
{
    [Theory]
    [InlineData(new byte[] { 0xFA }, 250UL)]
    [InlineData(new byte[] { 0xFC, 0xFB, 0x00 }, 251UL)]
    [InlineData(new byte[] { 0xFD, 0x01, 0x02, 0x03 }, 0x030201UL)]
    [InlineData(new byte[] { 0xFE, 1, 2, 3, 4, 5, 6, 7, 8 }, 0x0807060504030201UL)]
    public void Length_encoded_integers_use_the_prefix_width(byte[] bytes, ulong expected)
    {
        var reader = new PacketReader(bytes);
        Assert.Equal(expected, reader.ReadLengthEncodedInteger());
        Assert.True(reader.IsAtEnd);
    }

    [Fact]
    public void Strings_and_truncation()
    {
        var reader = new PacketReader([.. "abc"u8, 0, 3, .. "xyz"u8, 0xFB]);
        Assert.Equal("abc", reader.ReadNullTerminatedString());
        Assert.Equal("xyz", reader.ReadLengthEncodedString());
        Assert.True(reader.TryReadLengthEncodedNull());
        var ex = Assert.Throws<MySqlProtocolException>(() => new PacketReader([1, 2]).ReadUInt32());
        Assert.Contains("Truncated", ex.Message, StringComparison.Ordinal);
        Assert.Throws<MySqlProtocolException>(() => new PacketReader("no-nul"u8).ReadNullTerminatedString());
    }

    [Fact]
    public void Framing_waits_for_a_whole_packet_and_slices_it_in_place()
    {
        byte[] wire = [3, 0, 0, 7, (byte)'a', (byte)'b', (byte)'c', 1, 0, 0, 8, (byte)'z'];
        for (var cut = 0; cut < 7; cut++)
        {
            Assert.False(PacketFraming.TryReadPacket(new ReadOnlySequence<byte>(wire, 0, cut), out _, out _, out _));
        }

        var buffer = new ReadOnlySequence<byte>(wire);
        Assert.True(PacketFraming.TryReadPacket(buffer, out var payload, out var seq, out var consumed));
        Assert.Equal("abc", Encoding.ASCII.GetString(payload.ToArray()));
        Assert.Equal(7, seq);
        buffer = buffer.Slice(consumed);
        Assert.True(PacketFraming.TryReadPacket(buffer, out payload, out seq, out _));
        Assert.Equal("z", Encoding.ASCII.GetString(payload.ToArray()));
        Assert.Equal(8, seq);
    }

    [Fact]
    public void Framing_across_segments()
    {
        var first = new Segment([5, 0, 0, 0, 1, 2]);
        var last = first.Append([3, 4, 5]);
        var sequence = new ReadOnlySequence<byte>(first, 0, last, 3);
        Assert.True(PacketFraming.TryReadPacket(sequence, out var payload, out _, out _));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, payload.ToArray());
    }

    [Fact]
    public void A_16_MB_payload_continues_in_the_next_frame()
    {
        var max = PacketFraming.MaxChunkLength;
        var wire = new byte[4 + max + 4 + 2];
        wire[0] = 0xFF; wire[1] = 0xFF; wire[2] = 0xFF; wire[3] = 0;
        wire[4] = 0xAA;
        wire[4 + max - 1] = 0xBB;
        wire[4 + max] = 2; wire[4 + max + 3] = 1;
        wire[^2] = 0xCC; wire[^1] = 0xDD;
        Assert.False(PacketFraming.TryReadPacket(new ReadOnlySequence<byte>(wire, 0, wire.Length - 1), out _, out _, out _));
        Assert.True(PacketFraming.TryReadPacket(new ReadOnlySequence<byte>(wire), out var payload, out var seq, out _));
        var joined = payload.ToArray();
        Assert.Equal(max + 2, joined.Length);
        Assert.Equal(new byte[] { 0xAA }, joined[..1]);
        Assert.Equal(0xBB, joined[max - 1]);
        Assert.Equal(new byte[] { 0xCC, 0xDD }, joined[^2..]);
        Assert.Equal(1, seq);
    }

    [Fact]
    public void Handshake_v10_joins_both_nonce_parts()
    {
        var nonce = Enumerable.Range(1, 20).Select(i => (byte)i).ToArray();
        var caps = (uint)(ClientCapabilities.Protocol41 | ClientCapabilities.SecureConnection | ClientCapabilities.PluginAuth | ClientCapabilities.Ssl);
        var packet = new EventBytes().U8(10).Text("10.11.6-MariaDB").U8(0).U32(42).Bytes(nonce[..8]).U8(0)
            .U16((int)(caps & 0xFFFF)).U8(45).U16(2).U16((int)(caps >> 16)).U8(21).Bytes(new byte[10])
            .Bytes(nonce[8..]).U8(0).Text("mysql_native_password").U8(0).ToArray();
        var handshake = HandshakeV10.Parse(packet);
        Assert.Equal(nonce, handshake.Nonce);
        Assert.Equal(42u, handshake.ConnectionId);
        Assert.True(handshake.IsMariaDb);
        Assert.Equal("mysql_native_password", handshake.AuthPluginName);
        Assert.True(handshake.Capabilities.HasFlag(ClientCapabilities.PluginAuth));
        Assert.True(handshake.Capabilities.HasFlag(ClientCapabilities.Ssl));
    }

    [Fact]
    public void Error_packet_names_code_and_state()
    {
        var error = ErrorPacket.Parse([0xFF, 0xC3, 0x04, (byte)'#', .. "42000"u8, .. "Access denied"u8]);
        Assert.Equal(1219, error.ErrorCode);
        Assert.Equal("42000", error.SqlState);
        Assert.Equal("Access denied", error.Message);
    }

    // The server keeps SHA1(SHA1(password)) and checks: SHA1(reply XOR SHA1(nonce + stored)) == stored.
    [Theory]
    [InlineData("secret", true)]
    [InlineData("Secret", false)]
    public void Native_password_reply_passes_the_server_check_only_for_the_right_password(string tried, bool accepted)
    {
        var nonce = RandomNumberGenerator.GetBytes(20);
#pragma warning disable CA5350 // the protocol's own hash
        var stored = SHA1.HashData(SHA1.HashData("secret"u8));
        var reply = AuthPlugins.NativePasswordScramble(tried, nonce);
        var mix = SHA1.HashData([.. nonce, .. stored]);
        var candidate = reply.Select((b, i) => (byte)(b ^ mix[i])).ToArray();
        Assert.Equal(accepted, SHA1.HashData(candidate).SequenceEqual(stored));
#pragma warning restore CA5350
    }

    // caching_sha2_password fast path: the server caches SHA256(SHA256(password)) and checks
    // SHA256(reply XOR SHA256(stored + nonce)) == stored.
    [Theory]
    [InlineData("pässword", true)]
    [InlineData("password", false)]
    public void Caching_sha2_reply_passes_the_server_check_only_for_the_right_password(string tried, bool accepted)
    {
        var nonce = RandomNumberGenerator.GetBytes(20);
        var stored = SHA256.HashData(SHA256.HashData(Encoding.UTF8.GetBytes("pässword")));
        var reply = AuthPlugins.CachingSha2Scramble(tried, nonce);
        var mix = SHA256.HashData([.. stored, .. nonce]);
        var candidate = reply.Select((b, i) => (byte)(b ^ mix[i])).ToArray();
        Assert.Equal(accepted, SHA256.HashData(candidate).SequenceEqual(stored));
    }

    [Fact]
    public void Empty_password_sends_an_empty_reply()
    {
        Assert.Empty(AuthPlugins.NativePasswordScramble("", new byte[20]));
        Assert.Empty(AuthPlugins.CachingSha2Scramble("", new byte[20]));
    }

    // Full authentication without TLS: the server decrypts with its private key (OAEP) and XORs with the nonce.
    [Fact]
    public void Rsa_full_authentication_decrypts_to_the_password_on_the_server_side()
    {
        using var serverKey = RSA.Create(2048);
        var pem = serverKey.ExportSubjectPublicKeyInfoPem();
        var nonce = RandomNumberGenerator.GetBytes(20);
        var encrypted = AuthPlugins.EncryptPasswordWithPublicKey("a-long-password-longer-than-the-nonce", nonce, pem);
        var plain = serverKey.Decrypt(encrypted, RSAEncryptionPadding.OaepSHA1);
        var password = plain.Select((b, i) => (byte)(b ^ nonce[i % 20])).ToArray();
        Assert.Equal("a-long-password-longer-than-the-nonce\0", Encoding.UTF8.GetString(password));
    }

    [Fact]
    public void Gtid_set_round_trips_and_encodes_end_exclusive_intervals()
    {
        var set = MySqlGtidSet.Parse("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,3e11fa47-71ca-11e1-9e33-c80aa9429562:6");
        Assert.Equal("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7", set.ToString());
        var bytes = set.Encode();
        var reader = new PacketReader(bytes);
        Assert.Equal(1UL, reader.ReadUInt64());
        Assert.Equal(Convert.FromHexString("3E11FA4771CA11E19E33C80AA9429562"), reader.ReadBytes(16).ToArray());
        Assert.Equal(1UL, reader.ReadUInt64());
        Assert.Equal(1UL, reader.ReadUInt64());
        Assert.Equal(8UL, reader.ReadUInt64());
        Assert.True(reader.IsAtEnd);
        Assert.Throws<FormatException>(() => MySqlGtidSet.Parse("not-a-uuid:1"));
    }

    [Fact]
    public void Endpoint_uri()
    {
        var e = MySqlEndpoint.Parse("mysql://app:p%40ss@db.example:3307/shop?tls=required");
        Assert.Equal(("db.example", 3307, "app", "p@ss", "shop", TlsMode.Required), (e.Host, e.Port, e.User, e.Password, e.Database, e.Tls));
        Assert.Equal(3306, MySqlEndpoint.Parse("mysql://root@localhost").Port);
        Assert.Throws<FormatException>(() => MySqlEndpoint.Parse("postgres://x@y"));
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] data) => Memory = data;

        public Segment Append(byte[] data)
        {
            var next = new Segment(data) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}

// Layouts: MySQL protocol documentation pages for COM_REGISTER_SLAVE, COM_BINLOG_DUMP and COM_BINLOG_DUMP_GTID.
public sealed class ReplicationCommandTests
{
    [Fact]
    public void Register_replica()
    {
        var reader = new PacketReader(ReplicationCommands.RegisterReplica(4001).Payload.Span);
        Assert.Equal(0x15, reader.ReadByte());
        Assert.Equal(4001u, reader.ReadUInt32());
        Assert.Equal(0, reader.ReadByte());
        Assert.Equal(0, reader.ReadByte());
        Assert.Equal(0, reader.ReadByte());
        Assert.Equal(0, reader.ReadUInt16());
        Assert.Equal(0u, reader.ReadUInt32());
        Assert.Equal(0u, reader.ReadUInt32());
        Assert.True(reader.IsAtEnd);
    }

    [Fact]
    public void Register_replica_with_a_report_host()
    {
        var reader = new PacketReader(ReplicationCommands.RegisterReplica(4001, "osc binlog stream").Payload.Span);
        Assert.Equal(0x15, reader.ReadByte());
        Assert.Equal(4001u, reader.ReadUInt32());
        Assert.Equal("osc binlog stream", System.Text.Encoding.UTF8.GetString(reader.ReadBytes(reader.ReadByte())));
        Assert.Equal(0, reader.ReadByte());
        Assert.Equal(0, reader.ReadByte());
        Assert.Equal(0, reader.ReadUInt16());
        Assert.Equal(0u, reader.ReadUInt32());
        Assert.Equal(0u, reader.ReadUInt32());
        Assert.True(reader.IsAtEnd);
    }

    [Fact]
    public void Register_replica_refuses_a_report_host_the_server_would_cut()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ReplicationCommands.RegisterReplica(4001, new string('h', 61)));
    }

    [Fact]
    public void Binlog_dump_by_file_and_position()
    {
        var reader = new PacketReader(ReplicationCommands.BinlogDump("binlog.000042", 1234, 4001).Payload.Span);
        Assert.Equal(0x12, reader.ReadByte());
        Assert.Equal(1234u, reader.ReadUInt32());
        Assert.Equal(0, reader.ReadUInt16());
        Assert.Equal(4001u, reader.ReadUInt32());
        Assert.Equal("binlog.000042", reader.ReadStringToEnd());
    }

    [Fact]
    public void Binlog_dump_by_mysql_gtid_set()
    {
        var set = MySqlGtidSet.Parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10");
        var reader = new PacketReader(ReplicationCommands.BinlogDumpGtid(set, 4001).Payload.Span);
        Assert.Equal(0x1E, reader.ReadByte());
        Assert.Equal(0x04, reader.ReadUInt16());
        Assert.Equal(4001u, reader.ReadUInt32());
        Assert.Equal(0u, reader.ReadUInt32());
        Assert.Equal(4UL, reader.ReadUInt64());
        var length = reader.ReadUInt32();
        Assert.Equal((uint)reader.Remaining, length);
        Assert.Equal(1UL, reader.ReadUInt64());
        reader.Skip(16);
        Assert.Equal(1UL, reader.ReadUInt64());
        Assert.Equal(1UL, reader.ReadUInt64());
        Assert.Equal(11UL, reader.ReadUInt64());
    }

    // Protocol::AuthSwitchRequest (dev.mysql.com, page_protocol_connection_phase_packets_protocol_auth_switch_request):
    // 0xFE, plugin name NUL-terminated, plugin data (a fresh 20-byte nonce, NUL-terminated as servers send it).
    [Fact]
    public void An_auth_switch_request_yields_the_new_plugin_and_nonce_and_the_reply_the_server_accepts()
    {
        byte[] nonce = Enumerable.Range(1, 20).Select(i => (byte)(i * 7)).ToArray();
        byte[] payload = [0xFE, .. "mysql_native_password"u8, 0, .. nonce, 0];

        var request = AuthSwitchRequest.Parse(payload);

        Assert.Equal(AuthPlugins.NativePassword, request.PluginName);
        Assert.Equal(nonce, request.Nonce);
        byte[] reply = AuthPlugins.Scramble(request.PluginName, "secret", request.Nonce);
#pragma warning disable CA5350 // the protocol's own hash
        var stored = SHA1.HashData(SHA1.HashData("secret"u8));
        var mix = SHA1.HashData([.. request.Nonce, .. stored]);
        var candidate = reply.Zip(mix, (a, b) => (byte)(a ^ b)).ToArray();
        Assert.True(SHA1.HashData(candidate).SequenceEqual(stored));
#pragma warning restore CA5350
    }
}

