using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>One authenticated client connection speaking the classic protocol: just what a binlog reader needs
/// (setup queries, a text resultset reader, replica registration and the dump commands).</summary>
public sealed class MySqlProtocolConnection : IAsyncDisposable
{
    private const uint MaxPacketSize = 1 << 30;
    private const byte Utf8Mb4GeneralCi = 45;

    private readonly PacketTransport _packets;

    private MySqlProtocolConnection(PacketTransport packets, HandshakeV10 handshake)
    {
        _packets = packets;
        Handshake = handshake;
    }

    public HandshakeV10 Handshake { get; }
    public bool IsMariaDb => Handshake.IsMariaDb;
    public uint ConnectionId => Handshake.ConnectionId;
    public bool IsEncrypted => _packets.IsEncrypted;

    public static async Task<MySqlProtocolConnection> ConnectAsync(MySqlEndpoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timeout.CancelAfter(endpoint.ConnectTimeout);
                await socket.ConnectAsync(endpoint.Host, endpoint.Port, timeout.Token);
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var packets = new PacketTransport(new NetworkStream(socket, ownsSocket: true));
        try
        {
            var handshake = HandshakeV10.Parse((await packets.ReadPayloadAsync(cancellationToken)).Span);
            var connection = new MySqlProtocolConnection(packets, handshake);
            await connection.AuthenticateAsync(endpoint, cancellationToken);
            return connection;
        }
        catch
        {
            await packets.DisposeAsync();
            throw;
        }
    }

    private async Task AuthenticateAsync(MySqlEndpoint endpoint, CancellationToken cancellationToken)
    {
        var serverCaps = Handshake.Capabilities;
        if (!serverCaps.HasFlag(ClientCapabilities.Protocol41) || !serverCaps.HasFlag(ClientCapabilities.SecureConnection))
        {
            throw new MySqlProtocolException("The server does not speak protocol 4.1 with secure authentication.");
        }

        var caps = ClientCapabilities.LongPassword | ClientCapabilities.LongFlag | ClientCapabilities.Protocol41 | ClientCapabilities.Transactions
            | ClientCapabilities.SecureConnection | ClientCapabilities.MultiResults | ClientCapabilities.PluginAuth
            | (serverCaps & ClientCapabilities.PluginAuthLengthEncodedClientData);
        if (endpoint.Database is not null)
        {
            caps |= ClientCapabilities.ConnectWithDatabase;
        }

        var useTls = endpoint.Tls != TlsMode.Disabled && serverCaps.HasFlag(ClientCapabilities.Ssl);
        if (endpoint.Tls == TlsMode.Required && !useTls)
        {
            throw new MySqlProtocolException("TLS is required but the server does not offer it.");
        }

        if (useTls)
        {
            caps |= ClientCapabilities.Ssl;
            var sslRequest = new PacketWriter().WriteUInt32((uint)caps).WriteUInt32(MaxPacketSize).WriteByte(Utf8Mb4GeneralCi).WriteZeros(23);
            await _packets.WritePayloadAsync(sslRequest.Payload, cancellationToken);
            var tls = new SslClientAuthenticationOptions { TargetHost = endpoint.Host };
            if (endpoint.TrustServerCertificate)
            {
                // Opt-in only (trust-server-certificate=true), for self-signed test servers.
#pragma warning disable CA5359
                tls.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
#pragma warning restore CA5359
            }

            await _packets.UpgradeToTlsAsync(tls, cancellationToken);
        }

        var plugin = Handshake.AuthPluginName;
        var nonce = Handshake.Nonce;
        var authResponse = plugin is AuthPlugins.NativePassword or AuthPlugins.CachingSha2Password
            ? AuthPlugins.Scramble(plugin, endpoint.Password, nonce)
            : AuthPlugins.NativePasswordScramble(endpoint.Password, nonce); // an auth switch will follow
        if (plugin is not (AuthPlugins.NativePassword or AuthPlugins.CachingSha2Password))
        {
            plugin = AuthPlugins.NativePassword;
        }

        var response = new PacketWriter().WriteUInt32((uint)caps).WriteUInt32(MaxPacketSize).WriteByte(Utf8Mb4GeneralCi).WriteZeros(23)
            .WriteNullTerminatedString(endpoint.User);
        if (caps.HasFlag(ClientCapabilities.PluginAuthLengthEncodedClientData))
        {
            response.WriteLengthEncodedInteger((ulong)authResponse.Length).WriteBytes(authResponse);
        }
        else
        {
            response.WriteByte((byte)authResponse.Length).WriteBytes(authResponse);
        }

        if (endpoint.Database is not null)
        {
            response.WriteNullTerminatedString(endpoint.Database);
        }

        response.WriteNullTerminatedString(plugin);
        await _packets.WritePayloadAsync(response.Payload, cancellationToken);

        while (true)
        {
            var payload = await _packets.ReadPayloadAsync(cancellationToken);
            var kind = payload.Span[0];
            switch (kind)
            {
                case PacketKinds.Ok:
                    return;
                case PacketKinds.Error:
                    throw AuthenticationError(ErrorPacket.Parse(payload.Span), endpoint);
                case PacketKinds.Eof:
                    var switchRequest = AuthSwitchRequest.Parse(payload.Span);
                    plugin = switchRequest.PluginName;
                    nonce = switchRequest.Nonce;
                    await _packets.WritePayloadAsync(AuthPlugins.Scramble(plugin, endpoint.Password, nonce), cancellationToken);
                    break;
                case PacketKinds.AuthMoreData when plugin == AuthPlugins.CachingSha2Password:
                    await ContinueCachingSha2Async(payload.Span[1..].ToArray(), endpoint, nonce, cancellationToken);
                    break;
                default:
                    throw new MySqlProtocolException($"Unexpected packet 0x{kind:X2} during authentication with {plugin}.");
            }
        }
    }

    private async Task ContinueCachingSha2Async(byte[] data, MySqlEndpoint endpoint, byte[] nonce, CancellationToken cancellationToken)
    {
        const byte FastAuthSuccess = 3, PerformFullAuthentication = 4, RequestPublicKey = 2;
        if (data.Length == 1 && data[0] == FastAuthSuccess)
        {
            return; // an OK packet follows
        }

        if (data.Length != 1 || data[0] != PerformFullAuthentication)
        {
            throw new MySqlProtocolException("Unexpected caching_sha2_password exchange.");
        }

        if (_packets.IsEncrypted)
        {
            // Over TLS the password goes in clear, NUL-terminated.
            await _packets.WritePayloadAsync(Encoding.UTF8.GetBytes(endpoint.Password + "\0"), cancellationToken);
            return;
        }

        await _packets.WritePayloadAsync(new[] { RequestPublicKey }, cancellationToken);
        var keyPacket = await _packets.ReadPayloadAsync(cancellationToken);
        if (keyPacket.Span[0] == PacketKinds.Error)
        {
            throw ErrorPacket.Parse(keyPacket.Span).ToException();
        }

        var pem = Encoding.ASCII.GetString(keyPacket.Span[1..]);
        await _packets.WritePayloadAsync(AuthPlugins.EncryptPasswordWithPublicKey(endpoint.Password, nonce, pem), cancellationToken);
    }

    private static MySqlServerException AuthenticationError(ErrorPacket error, MySqlEndpoint endpoint) => error.ErrorCode switch
    {
        1045 => new MySqlServerException(error.ErrorCode, error.SqlState, $"Access denied for '{endpoint.User}' at {endpoint.Host}:{endpoint.Port}: wrong user or password. ({error.Message})"),
        _ => error.ToException(),
    };

    /// <summary>Runs a statement that returns no rows.</summary>
    public async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        var result = await QueryAsync(sql, cancellationToken);
        if (result.Columns.Count > 0)
        {
            throw new MySqlProtocolException($"Expected no resultset from: {sql}");
        }
    }

    /// <summary>COM_QUERY with a minimal text resultset reader: every value as a string or null.</summary>
    public async Task<TextResultSet> QueryAsync(string sql, CancellationToken cancellationToken)
    {
        await SendCommandAsync(new PacketWriter().WriteByte(0x03).WriteString(sql), cancellationToken);
        var first = await _packets.ReadPayloadAsync(cancellationToken);
        switch (first.Span[0])
        {
            case PacketKinds.Ok:
                return new TextResultSet([], []);
            case PacketKinds.Error:
                throw ErrorPacket.Parse(first.Span).ToException();
        }

        var columnCount = new PacketReader(first.Span).ReadLengthEncodedLength();
        var columns = new List<string>(columnCount);
        for (var i = 0; i < columnCount; i++)
        {
            var definition = new PacketReader((await _packets.ReadPayloadAsync(cancellationToken)).Span);
            for (var skip = 0; skip < 4; skip++)
            {
                definition.ReadLengthEncodedBytes(); // catalog, schema, table, original table
            }

            columns.Add(definition.ReadLengthEncodedString());
        }

        var eof = await _packets.ReadPayloadAsync(cancellationToken);
        if (!PacketKinds.IsEof(eof.Span))
        {
            throw new MySqlProtocolException("Expected EOF after column definitions.");
        }

        var rows = new List<string?[]>();
        while (true)
        {
            var payload = await _packets.ReadPayloadAsync(cancellationToken);
            if (PacketKinds.IsEof(payload.Span))
            {
                return new TextResultSet(columns, rows);
            }

            if (payload.Span[0] == PacketKinds.Error)
            {
                throw ErrorPacket.Parse(payload.Span).ToException();
            }

            var reader = new PacketReader(payload.Span);
            var row = new string?[columnCount];
            for (var i = 0; i < columnCount; i++)
            {
                row[i] = reader.TryReadLengthEncodedNull() ? null : reader.ReadLengthEncodedString();
            }

            rows.Add(row);
        }
    }

    /// <summary>COM_REGISTER_SLAVE: announces us as a replica with this server id.</summary>
    public async Task RegisterReplicaAsync(uint serverId, string reportHost, CancellationToken cancellationToken)
    {
        await SendCommandAsync(ReplicationCommands.RegisterReplica(serverId, reportHost), cancellationToken);
        await ExpectOkAsync(cancellationToken);
    }

    /// <summary>COM_BINLOG_DUMP from a file and position (an empty file name with MariaDB's @slave_connect_state
    /// starts from a GTID position). Events follow as packets; read them with <see cref="ReadPayloadAsync"/>.</summary>
    public Task StartBinlogDumpAsync(string fileName, uint position, uint serverId, CancellationToken cancellationToken)
    {
        return SendCommandAsync(ReplicationCommands.BinlogDump(fileName, position, serverId), cancellationToken);
    }

    /// <summary>COM_BINLOG_DUMP_GTID (MySQL): streams everything not in <paramref name="executed"/>.</summary>
    public Task StartBinlogDumpGtidAsync(MySqlGtidSet executed, uint serverId, CancellationToken cancellationToken)
    {
        return SendCommandAsync(ReplicationCommands.BinlogDumpGtid(executed, serverId), cancellationToken);
    }

    public ValueTask<ReadOnlyMemory<byte>> ReadPayloadAsync(CancellationToken cancellationToken) => _packets.ReadPayloadAsync(cancellationToken);

    private async Task SendCommandAsync(PacketWriter command, CancellationToken cancellationToken)
    {
        _packets.ResetSequence();
        await _packets.WritePayloadAsync(command.Payload, cancellationToken);
    }

    private async Task ExpectOkAsync(CancellationToken cancellationToken)
    {
        var payload = await _packets.ReadPayloadAsync(cancellationToken);
        if (payload.Span[0] == PacketKinds.Error)
        {
            throw ErrorPacket.Parse(payload.Span).ToException();
        }

        if (payload.Span[0] != PacketKinds.Ok)
        {
            throw new MySqlProtocolException($"Expected OK, got 0x{payload.Span[0]:X2}.");
        }
    }

    public ValueTask DisposeAsync() => _packets.DisposeAsync();
}

public sealed record TextResultSet(IReadOnlyList<string> Columns, IReadOnlyList<string?[]> Rows)
{
    public string? FirstValue(string column)
    {
        var index = Columns.ToList().FindIndex(c => string.Equals(c, column, StringComparison.OrdinalIgnoreCase));
        return index >= 0 && Rows.Count > 0 ? Rows[0][index] : null;
    }
}
