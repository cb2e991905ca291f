using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;

namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>Packets over a stream: reads through a <see cref="PipeReader"/> so framing is parsed in place, writes
/// whole frames. A payload returned by <see cref="ReadPayloadAsync"/> stays valid until the next read.</summary>
public sealed class PacketTransport : IAsyncDisposable
{
    private static readonly StreamPipeReaderOptions ReaderOptions = new(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024, leaveOpen: true);

    private readonly Stream _transport;
    private Stream _stream;
    private PipeReader _reader;
    private SequencePosition? _pendingConsumed;
    private byte[] _joined = new byte[64 * 1024];
    private byte _sequenceId;

    public PacketTransport(Stream transport)
    {
        _transport = transport;
        _stream = transport;
        _reader = PipeReader.Create(_stream, ReaderOptions);
    }

    public bool IsEncrypted => _stream is SslStream;

    /// <summary>Commands restart the sequence at 0.</summary>
    public void ResetSequence() => _sequenceId = 0;

    public async ValueTask<ReadOnlyMemory<byte>> ReadPayloadAsync(CancellationToken cancellationToken)
    {
        if (_pendingConsumed is { } pending)
        {
            _reader.AdvanceTo(pending);
            _pendingConsumed = null;
        }

        while (true)
        {
            var result = await _reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (PacketFraming.TryReadPacket(buffer, out var payload, out var sequenceId, out var consumed))
            {
                _sequenceId = (byte)(sequenceId + 1);
                _pendingConsumed = consumed;
                if (payload.IsEmpty)
                {
                    // Every reply we read starts with a type byte; callers may index it without checking.
                    throw new MySqlProtocolException("Empty packet from the server.");
                }

                return payload.IsSingleSegment ? payload.First : Contiguous(payload);
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                throw new EndOfStreamException("The server closed the connection.");
            }
        }
    }

    public async ValueTask WritePayloadAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        // Frames of at most 16 MB - 1; a payload that is an exact multiple ends with an empty frame.
        var frame = new byte[PacketFraming.HeaderLength + Math.Min(payload.Length, PacketFraming.MaxChunkLength)];
        var offset = 0;
        while (true)
        {
            var length = Math.Min(payload.Length - offset, PacketFraming.MaxChunkLength);
            frame[0] = (byte)length;
            frame[1] = (byte)(length >> 8);
            frame[2] = (byte)(length >> 16);
            frame[3] = _sequenceId++;
            payload.Span.Slice(offset, length).CopyTo(frame.AsSpan(PacketFraming.HeaderLength));
            await _stream.WriteAsync(frame.AsMemory(0, PacketFraming.HeaderLength + length), cancellationToken);
            offset += length;
            if (length < PacketFraming.MaxChunkLength)
            {
                break;
            }
        }

        await _stream.FlushAsync(cancellationToken);
    }

    /// <summary>Switches to TLS after the SSL request packet; the server sends nothing in between, so no buffered
    /// bytes are lost by replacing the reader.</summary>
    public async ValueTask UpgradeToTlsAsync(SslClientAuthenticationOptions options, CancellationToken cancellationToken)
    {
        await _reader.CompleteAsync();
        var ssl = new SslStream(_transport, leaveInnerStreamOpen: true);
        await ssl.AuthenticateAsClientAsync(options, cancellationToken);
        _stream = ssl;
        _reader = PipeReader.Create(_stream, ReaderOptions);
        _pendingConsumed = null;
    }

    public async ValueTask DisposeAsync()
    {
        await _reader.CompleteAsync();
        if (_stream != _transport)
        {
            await _stream.DisposeAsync();
        }

        await _transport.DisposeAsync();
    }

    private ReadOnlyMemory<byte> Contiguous(in ReadOnlySequence<byte> payload)
    {
        // A payload that spans pipe segments is joined into one reused buffer: one block copy per such packet.
        if (payload.Length > _joined.Length)
        {
            _joined = new byte[Math.Max(payload.Length, _joined.Length * 2)];
        }

        payload.CopyTo(_joined);
        return _joined.AsMemory(0, (int)payload.Length);
    }
}
