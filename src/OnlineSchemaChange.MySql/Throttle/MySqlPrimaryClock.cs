using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.MySql.Connection;

namespace OnlineSchemaChange.MySql.Throttle;

/// <summary>
/// The primary's clock, read through one session kept open between reads: the replica-lag signals read it at every
/// throttle check, and a connection a read would cost the primary a login each time.
/// </summary>
public sealed class MySqlPrimaryClock(string connectionString) : IAsyncDisposable
{
    private readonly MySqlReusedSession _session = new(connectionString);

    /// <summary>The primary's time as seconds since the epoch, which no session time zone changes.</summary>
    public async Task<decimal> NowAsync(CancellationToken cancellationToken)
    {
        decimal now = 0;
        await _session.RunAsync(async connection =>
        {
            await using var command = new MySqlCommand("SELECT UNIX_TIMESTAMP(NOW(6))", connection);
            now = Convert.ToDecimal(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
        }, againOnStale: true, cancellationToken);
        return now;
    }

    public ValueTask DisposeAsync() => _session.DisposeAsync();
}
