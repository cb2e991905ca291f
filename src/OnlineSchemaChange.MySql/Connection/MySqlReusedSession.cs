using System.Data;
using MySqlConnector;

namespace OnlineSchemaChange.MySql.Connection;

/// <summary>
/// One connection kept open between uses by a loop that writes again and again (the heartbeat, the replay's
/// batches): osc's connections are not pooled, and a connection a use cost the server a login each time. A use that
/// fails drops the connection, since its state is then unknown, and the next use opens another. Not for concurrent use.
/// <paramref name="setup"/>, when given, runs on each connection as it opens.
/// </summary>
internal sealed class MySqlReusedSession(string connectionString, string? setup = null) : IAsyncDisposable
{
    private MySqlConnection? _connection;

    /// <summary>
    /// Runs <paramref name="work"/> on the kept connection. With <paramref name="againOnStale"/>, work that fails on a
    /// connection kept from an earlier use runs once more on a fresh one: the server may have ended the idle session
    /// since (wait_timeout, an operator's KILL), which shows only at the next use. Only for work that is idempotent and
    /// leaves nothing behind when it fails (one transaction).
    /// </summary>
    public async Task RunAsync(Func<MySqlConnection, Task> work, bool againOnStale, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        bool reusing = _connection is { State: ConnectionState.Open };
        try
        {
            await work(await OpenAsync(cancellationToken));
            return;
        }
        catch (Exception) when (againOnStale && reusing && !cancellationToken.IsCancellationRequested)
        {
            await DisposeAsync();
        }
        catch
        {
            await DisposeAsync();
            throw;
        }

        try
        {
            await work(await OpenAsync(cancellationToken));
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    private async Task<MySqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        if (_connection is { State: ConnectionState.Open })
        {
            return _connection;
        }

        await DisposeAsync();
        var connection = new MySqlConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            if (setup is not null)
            {
                await using var command = new MySqlCommand(setup, connection);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        _connection = connection;
        return connection;
    }
}
