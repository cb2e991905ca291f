using System.Globalization;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>Reads the binlog as a replica and hands events out one by one as they are decoded, a transaction's rows
/// before its commit, so memory does not grow with a transaction's size: a slow consumer holds the reading back.
/// <see cref="LastCommitted"/> moves only at transaction ends. A dropped connection is reconnected with backoff and
/// resumed at <see cref="LastCommitted"/>; the part of a transaction handed out before the drop is recognised by
/// its offsets and not handed out again, so every event arrives exactly once (see <see cref="DeliveryCursor"/>).</summary>
public sealed class BinlogClient : IAsyncDisposable
{
    private const int ErrorAccessDenied = 1045;
    private const int ErrorSpecificAccessDenied = 1227;
    private const int ErrorMasterFatalReadingBinlog = 1236;
    private const int ErrorServerShutdown = 1053;
    private const int ErrorQueryInterrupted = 1317;
    private const int ErrorConnectionKilled = 1927;
    private const int ErrorReplicaSameId = 4052;

    private readonly BinlogClientOptions _options;
    private readonly InformationSchemaTables _schemas;
    private readonly DeliveryCursor _cursor = new();
    private MySqlProtocolConnection? _connection;
    private BinlogEventDecoder? _decoder;
    private uint? _dumpConnectionId;

    public BinlogClient(BinlogClientOptions options)
    {
        _options = options;
        _schemas = new InformationSchemaTables(options.Endpoint);
    }

    /// <summary>Coordinates just after the last transaction handed out whole (or the start position): a position
    /// to record and resume from, never one inside a transaction.</summary>
    public BinlogCoordinates? LastCommitted => _cursor.LastCommitted;
    public int Reconnects { get; private set; }
    /// <summary>Reconnects that resumed inside a transaction, dropping the part of it already handed out.</summary>
    public int MidTransactionResumes { get; private set; }
    public bool? IsMariaDb => _connection?.IsMariaDb;
    /// <summary>The server's id of the last connection that started streaming (its binlog dump thread).</summary>
    public uint? DumpConnectionId => _dumpConnectionId;

    public async IAsyncEnumerable<BinlogEvent> ReadEventsAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var failures = 0;
        while (true)
        {
            BinlogEvent next;
            try
            {
                if (_connection is null)
                {
                    await StartStreamAsync(cancellationToken);
                }

                next = await ReadDeliverableAsync(cancellationToken);
                failures = 0;
            }
            catch (Exception e) when (IsTransient(e) && !cancellationToken.IsCancellationRequested)
            {
                await DropConnectionAsync();
                if (++failures > _options.MaxReconnectAttempts)
                {
                    throw new IOException($"Binlog connection lost and {_options.MaxReconnectAttempts} reconnects failed; last committed {LastCommitted}.", e);
                }

                Reconnects++;
                var delay = TimeSpan.FromTicks(Math.Min(_options.ReconnectMaxDelay.Ticks, _options.ReconnectBaseDelay.Ticks << Math.Min(failures - 1, 16)));
                await Task.Delay(delay + TimeSpan.FromMilliseconds(Random.Shared.Next(0, 100)), cancellationToken);
                continue;
            }

            yield return next;
        }
    }

    private static bool IsTransient(Exception e) => e switch
    {
        EndOfStreamException or SocketException or TimeoutException => true,
        IOException => true,
        MySqlServerException s => s.ErrorCode is ErrorServerShutdown or ErrorQueryInterrupted or ErrorConnectionKilled or 1158 or 1159 or 1160 or 1161,
        _ => false,
    };

    /// <summary>Reads until an event to hand out: not one handed out before a reconnect, a table we want, decoded.</summary>
    private async Task<BinlogEvent> ReadDeliverableAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var decoded = await ReadEventAsync(cancellationToken);
            var step = _cursor.Accept(decoded);
            if (step == TransactionStep.Statement)
            {
                // A statement on its own (DDL): table definitions may have changed.
                _schemas.Invalidate();
            }

            if (step is null || decoded is SkippedEvent || (decoded is TableMapEvent map && !Wanted(map)))
            {
                continue;
            }

            return decoded;
        }
    }

    private bool Wanted(TableMapEvent map) =>
        _options.Tables is null || _options.Tables.Contains(map.Database + "." + map.Table) || _options.Tables.Contains(map.Database + ".*");

    private async Task<BinlogEvent> ReadEventAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ReadTimeout);
        ReadOnlyMemory<byte> payload;
        try
        {
            payload = await _connection!.ReadPayloadAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"No binlog event nor heartbeat for {_options.ReadTimeout.TotalSeconds:0} s.");
        }

        switch (payload.Span[0])
        {
            case PacketKinds.Ok:
                break;
            case PacketKinds.Error:
                throw DumpError(ErrorPacket.Parse(payload.Span));
            case PacketKinds.Eof when payload.Length < 9:
                throw new EndOfStreamException("The server ended the binlog stream.");
            default:
                throw new MySqlProtocolException($"Unexpected packet 0x{payload.Span[0]:X2} in the binlog stream.");
        }

        var decoded = _decoder!.Decode(payload.Span[1..]);
        if (decoded is TableMapEvent map && Wanted(map) && !_schemas.IsLoaded(map.Database, map.Table))
        {
            await _schemas.LoadAsync(map.Database, map.Table, cancellationToken);
        }

        return decoded;
    }

    private Exception DumpError(ErrorPacket error) => error.ErrorCode switch
    {
        ErrorSpecificAccessDenied => new ReplicationSetupException(
            $"User '{_options.Endpoint.User}' lacks the REPLICATION SLAVE privilege: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ... ({error.Message})"),
        // A server keeps one binlog reader per server id and ends the older one when another registers with it. Not
        // retried: taking the id back would end the other reader's stream in turn.
        ErrorReplicaSameId => SameIdTaken(error),
        ErrorMasterFatalReadingBinlog when error.Message.Contains("same server_uuid/server_id", StringComparison.OrdinalIgnoreCase) => SameIdTaken(error),
        ErrorMasterFatalReadingBinlog => new ReplicationSetupException($"The server cannot stream the requested binlog position: {error.Message}"),
        _ => error.ToException(),
    };

    private OscException SameIdTaken(ErrorPacket error) => new(
        $"The server ended osc's binlog stream because another binlog reader connected with the same server id, {_options.ServerId} ({error.Message}).",
        "Every binlog reader of a server needs its own server id. If a replica uses this one, give osc another; otherwise run again (with --resume to keep the copy so far).");

    private async Task StartStreamAsync(CancellationToken cancellationToken)
    {
        MySqlProtocolConnection connection;
        try
        {
            connection = await MySqlProtocolConnection.ConnectAsync(_options.Endpoint, cancellationToken);
        }
        catch (MySqlServerException e) when (e.ErrorCode == ErrorAccessDenied)
        {
            throw new ReplicationSetupException(e.Message, e);
        }

        _connection = connection;
        var variables = await connection.QueryAsync(
            "SELECT @@global.log_bin AS log_bin, @@global.binlog_format AS binlog_format, @@global.binlog_row_image AS binlog_row_image, @@global.binlog_checksum AS binlog_checksum",
            cancellationToken);
        if (variables.FirstValue("log_bin") is not ("1" or "ON"))
        {
            throw new ReplicationSetupException("Binary logging is off on the server: start it with --log-bin.");
        }

        if (!string.Equals(variables.FirstValue("binlog_format"), "ROW", StringComparison.OrdinalIgnoreCase))
        {
            throw new ReplicationSetupException($"binlog_format is {variables.FirstValue("binlog_format")}; row events need binlog_format=ROW.");
        }

        if (!string.Equals(variables.FirstValue("binlog_row_image"), "FULL", StringComparison.OrdinalIgnoreCase))
        {
            throw new ReplicationSetupException($"binlog_row_image is {variables.FirstValue("binlog_row_image")}; whole rows need binlog_row_image=FULL.");
        }

        var checksum = string.Equals(variables.FirstValue("binlog_checksum"), "CRC32", StringComparison.OrdinalIgnoreCase) ? ChecksumAlgorithm.Crc32 : ChecksumAlgorithm.None;
        await connection.ExecuteAsync("SET @master_binlog_checksum = @@global.binlog_checksum", cancellationToken);
        var heartbeatNanoseconds = (long)_options.HeartbeatPeriod.TotalMilliseconds * 1_000_000L;
        await connection.ExecuteAsync(string.Create(CultureInfo.InvariantCulture, $"SET @master_heartbeat_period = {heartbeatNanoseconds}"), cancellationToken);
        if (connection.IsMariaDb)
        {
            // Below capability 4 MariaDB replaces GTID and other events with dummies.
            await connection.ExecuteAsync("SET @mariadb_slave_capability = 4", cancellationToken);
            if (_options.SkipMarkedEvents)
            {
                // The dump thread drops events flagged skip_replication when its own session has the flag set.
                await connection.ExecuteAsync("SET SESSION skip_replication = 1", cancellationToken);
            }
        }

        var start = LastCommitted is { } resume ? new BinlogStart.FilePosition(resume.File, (uint)resume.Position) : _options.Start;
        if (start is BinlogStart.CurrentPosition)
        {
            start = await CurrentPositionAsync(connection, cancellationToken);
        }

        // A file position given or read is between groups: a reconnect before the first commit resumes there, not
        // at a newer current position.
        _cursor.Start(start is BinlogStart.FilePosition at ? new BinlogCoordinates(at.File, at.Position, null) : null);
        _cursor.Reconnecting();
        if (_cursor.Skipping)
        {
            MidTransactionResumes++;
        }

        _decoder = new BinlogEventDecoder(_schemas, start is BinlogStart.FilePosition f ? f.File : "")
        {
            Checksum = checksum,
            TableFilter = _options.Tables is null ? null : Wanted,
        };

        try
        {
            await connection.RegisterReplicaAsync(_options.ServerId, _options.ReportHost, cancellationToken);
            switch (start)
            {
                case BinlogStart.FilePosition position:
                    await connection.StartBinlogDumpAsync(position.File, position.Position, _options.ServerId, cancellationToken);
                    break;
                case BinlogStart.MariaDbGtid gtid:
                    if (!connection.IsMariaDb)
                    {
                        throw new ReplicationSetupException("A MariaDB GTID position was given but the server is MySQL.");
                    }

                    await connection.ExecuteAsync($"SET @slave_connect_state = {InformationSchemaTables.Quote(gtid.Position)}", cancellationToken);
                    await connection.ExecuteAsync("SET @slave_gtid_strict_mode = 0", cancellationToken);
                    await connection.StartBinlogDumpAsync("", 4, _options.ServerId, cancellationToken);
                    break;
                case BinlogStart.MySqlGtid gtid:
                    if (connection.IsMariaDb)
                    {
                        throw new ReplicationSetupException("A MySQL GTID set was given but the server is MariaDB (use domain-server-sequence).");
                    }

                    await connection.StartBinlogDumpGtidAsync(gtid.Executed, _options.ServerId, cancellationToken);
                    break;
            }

            _dumpConnectionId = connection.ConnectionId;
        }
        catch (MySqlServerException e) when (e.ErrorCode is ErrorSpecificAccessDenied or ErrorAccessDenied)
        {
            // Logged in already, so an access error here is about the replication privilege (MariaDB answers 1045).
            throw new ReplicationSetupException(
                $"User '{_options.Endpoint.User}' lacks the REPLICATION SLAVE privilege: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ... ({e.ServerMessage})", e);
        }
    }

    private async Task<BinlogStart.FilePosition> CurrentPositionAsync(MySqlProtocolConnection connection, CancellationToken cancellationToken)
    {
        TextResultSet status;
        try
        {
            status = await connection.QueryAsync("SHOW MASTER STATUS", cancellationToken);
        }
        catch (MySqlServerException e) when (e.ErrorCode == ErrorSpecificAccessDenied)
        {
            throw new ReplicationSetupException(
                $"User '{_options.Endpoint.User}' lacks the REPLICATION CLIENT (MariaDB: BINLOG MONITOR) privilege needed to read the current binlog position. ({e.ServerMessage})", e);
        }

        if (status.Rows.Count == 0)
        {
            throw new ReplicationSetupException("SHOW MASTER STATUS returned nothing: binary logging is off.");
        }

        return new BinlogStart.FilePosition(status.Rows[0][0]!, uint.Parse(status.Rows[0][1]!, CultureInfo.InvariantCulture));
    }

    private async Task DropConnectionAsync()
    {
        if (_connection is not null)
        {
            try
            {
                await _connection.DisposeAsync();
            }
            catch (IOException)
            {
                // already broken
            }

            _connection = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await DropConnectionAsync();
        if (_dumpConnectionId is { } dump)
        {
            await EndDumpThreadAsync(dump);
        }

        await _schemas.DisposeAsync();
    }

    /// <summary>
    /// A dump thread does not read from its connection, so the server notices the connection closed only when it next
    /// writes to it: with no event for the table's server to send, a heartbeat period or two later. Until then the
    /// thread and its replica registration stay, where replica discovery and the next run would see them. Ending it
    /// is a courtesy: whatever fails here, the thread still ends by itself.
    /// </summary>
    private async Task EndDumpThreadAsync(uint id)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await using MySqlProtocolConnection connection = await MySqlProtocolConnection.ConnectAsync(_options.Endpoint with { Database = null }, timeout.Token);
            // Only a binlog dump thread is ended: the id is never a session that merely took its number later.
            TextResultSet found = await connection.QueryAsync(
                string.Create(CultureInfo.InvariantCulture, $"SELECT ID FROM information_schema.PROCESSLIST WHERE ID = {id} AND COMMAND LIKE 'Binlog Dump%'"),
                timeout.Token);
            if (found.Rows.Count > 0)
            {
                await connection.ExecuteAsync(string.Create(CultureInfo.InvariantCulture, $"KILL CONNECTION {id}"), timeout.Token);
            }
        }
        catch (Exception e) when (e is MySqlServerException or MySqlProtocolException or IOException or SocketException or OperationCanceledException
                                       or System.Security.Authentication.AuthenticationException)
        {
            // Gone already, or the server cannot be reached: the thread ends at its next write.
        }
    }
}
