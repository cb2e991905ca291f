using System.Diagnostics;
using System.Globalization;
using System.Text;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.MySql.Binlog;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>
/// The server's own list of prepared XA transactions (<c>XA RECOVER</c>): a transaction leaves it once its XA COMMIT
/// or XA ROLLBACK has finished in the storage engine. Used to wait until a commit read from the binlog is visible to
/// new reads, and to refuse a run while a transaction prepared before its stream began is still pending.
/// </summary>
public sealed class ServerPreparedXa(string connectionString) : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private MySqlConnection? _connection;
    private bool _hexForm;

    /// <summary>How long an XA COMMIT read from the binlog may take to finish in the engine.</summary>
    public TimeSpan CommitTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The identifiers of the prepared XA transactions now on the server.</summary>
    public async Task<IReadOnlyList<XaId>> ListAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            try
            {
                try
                {
                    return await ReadAsync(await ConnectionAsync(cancellationToken), cancellationToken);
                }
                catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.UnableToConnectToHost or MySqlErrorCode.CommandTimeoutExpired
                    || e.InnerException is IOException or System.Net.Sockets.SocketException || _connection?.State != System.Data.ConnectionState.Open)
                {
                    // The connection was lost (idle timeout, KILL, restart): once more on a new one.
                    await CloseAsync();
                    return await ReadAsync(await ConnectionAsync(cancellationToken), cancellationToken);
                }
            }
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.SpecifiedAccessDeniedError or MySqlErrorCode.AccessDenied)
            {
                throw new OscException($"Cannot list the server's prepared XA transactions (XA RECOVER): {e.Message}",
                    "Grant the user XA_RECOVER_ADMIN (MySQL 8) so that osc can tell when an XA transaction on the table has committed.");
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Waits until <paramref name="xid"/>, whose XA COMMIT was read from the binlog, has left the list.</summary>
    public async Task WaitUntilCommittedAsync(XaId xid, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(2);
        while ((await ListAsync(cancellationToken)).Contains(xid))
        {
            if (clock.Elapsed > CommitTimeout)
            {
                throw new OscException(
                    $"The XA transaction {xid} is logged as committed but still listed as prepared by XA RECOVER after {CommitTimeout.TotalSeconds:0} s; its rows cannot be replayed before they are visible.",
                    "Check whether the XA COMMIT is stuck, or whether the same XID was prepared again, then resume with --resume.");
            }

            await Task.Delay(delay, cancellationToken);
            delay = TimeSpan.FromMilliseconds(Math.Min(200, delay.TotalMilliseconds * 2));
        }
    }

    /// <summary>
    /// Refuses, after waiting up to <paramref name="timeout"/>, while any prepared XA transaction on the server has not
    /// been read prepared by the feed: it was prepared before the stream began, so its rows were logged before it and
    /// its XA COMMIT would reach the stream without them, while the copy, which cannot see rows not yet committed,
    /// would miss them too.
    /// </summary>
    /// <param name="waiting">Told every two seconds while it waits, which transactions it waits for.</param>
    public async Task EnsureNoneFromBeforeTheStreamAsync(PreparedXaTransactions seen, string table, TimeSpan timeout, CancellationToken cancellationToken,
        Action<string>? waiting = null)
    {
        ArgumentNullException.ThrowIfNull(seen);
        var clock = Stopwatch.StartNew();
        TimeSpan nextReport = TimeSpan.FromSeconds(2);
        while (true)
        {
            List<XaId> earlier = [.. (await ListAsync(cancellationToken)).Where(x => !seen.SawPrepared(x))];
            if (earlier.Count == 0)
            {
                return;
            }

            if (waiting is not null && clock.Elapsed >= nextReport)
            {
                nextReport += TimeSpan.FromSeconds(2);
                waiting($"waiting up to {timeout.TotalSeconds:0} s for XA transactions prepared before the start to be committed or rolled back: {string.Join("; ", earlier)}");
            }

            if (clock.Elapsed > timeout)
            {
                throw new OscException(
                    $"XA transactions prepared before the migration started are still pending ({string.Join("; ", earlier)}): their rows were logged before the binlog position the replay starts from, so if they changed {table} their XA COMMIT could not be replayed.",
                    "Commit or roll them back (XA COMMIT / XA ROLLBACK with the XID XA RECOVER lists), then run again.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await CloseAsync();
        _gate.Dispose();
    }

    private async Task<MySqlConnection> ConnectionAsync(CancellationToken cancellationToken)
    {
        if (_connection is null)
        {
            _connection = new MySqlConnection(connectionString);
            await _connection.OpenAsync(cancellationToken);
        }

        return _connection;
    }

    private async Task CloseAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    // MariaDB prints each XID as SQL (FORMAT='SQL': 'abc' or X'..',X'..',n), MySQL as hex (CONVERT XID: 0x...): text
    // either way, since the raw bytes come back in the connection's character set and need not be valid in it.
    private async Task<IReadOnlyList<XaId>> ReadAsync(MySqlConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            return await ReadAsync(connection, _hexForm, cancellationToken);
        }
        catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.ParseError && !_hexForm)
        {
            _hexForm = true;
            return await ReadAsync(connection, _hexForm, cancellationToken);
        }
    }

    private static async Task<IReadOnlyList<XaId>> ReadAsync(MySqlConnection connection, bool hexForm, CancellationToken cancellationToken)
    {
        // Columns: formatID, gtrid_length, bqual_length, data.
        var list = new List<XaId>();
        await using var command = new MySqlCommand(hexForm ? "XA RECOVER CONVERT XID" : "XA RECOVER FORMAT='SQL'", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            long format = Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture);
            int gtridLength = Convert.ToInt32(reader.GetValue(1), CultureInfo.InvariantCulture);
            string data = reader.GetValue(3) is byte[] bytes ? Encoding.ASCII.GetString(bytes) : Convert.ToString(reader.GetValue(3), CultureInfo.InvariantCulture) ?? "";
            if (hexForm)
            {
                byte[] raw = Convert.FromHexString(data.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? data[2..] : data);
                list.Add(XaId.FromBytes(format, raw.AsSpan(0, gtridLength), raw.AsSpan(gtridLength)));
            }
            else if (XaId.TryParseCompletion("XA COMMIT " + data, out XaCompletion parsed))
            {
                list.Add(parsed.Xid with { FormatId = format });
            }
            else
            {
                throw new InvalidOperationException($"XA RECOVER returned an XID that cannot be read: {data}");
            }
        }

        return list;
    }
}
