using System.Data;
using MySqlConnector;

namespace OnlineSchemaChange.MySql.Connection;

/// <summary>
/// One connection kept open between uses by a loop that writes again and again (the heartbeat, the replay's
/// batches): osc's connections are not pooled, and a connection a use cost the server a login each time. After a
/// failure the user drops it (<see cref="DisposeAsync"/>), since its state is then unknown, and the next use opens
/// another. Not for concurrent use.
/// </summary>
internal sealed class MySqlReusedSession(string connectionString) : IAsyncDisposable
{
    private MySqlConnection? _connection;

    /// <summary>Whether a connection from an earlier use is open (the server may still have ended it since).</summary>
    public bool Reusing => _connection is { State: ConnectionState.Open };

    public async Task<MySqlConnection> OpenAsync(CancellationToken cancellationToken)
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
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        _connection = connection;
        return connection;
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
            _connection = null;
        }
    }
}
