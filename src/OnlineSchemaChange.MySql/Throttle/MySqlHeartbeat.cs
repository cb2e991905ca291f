using System.Diagnostics;
using MySqlConnector;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Throttle;

/// <summary>
/// Writes the primary's clock into the bookkeeping table every interval. The row replicates like any other, so on a
/// replica "now minus the heartbeat" is how far behind that replica applies, measured the same way on MySQL and
/// MariaDB, whatever the replication topology (Seconds_Behind_Master is whole seconds and lies under some setups).
/// </summary>
public sealed class MySqlHeartbeat(string connectionString, TableName logTable, TimeSpan interval) : IAsyncDisposable
{
    public const int HeartbeatId = 1;

    private readonly CancellationTokenSource _stop = new();
    private readonly Queue<(long At, TimeSpan Took)> _recent = new();
    private long _inFlightSince;
    private Task? _loop;

    public long Beats { get; private set; }

    /// <summary>Creates the bookkeeping table (heartbeats and checkpoints) if it does not exist yet.</summary>
    public static async Task CreateLogTableAsync(string connectionString, TableName logTable, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(logTable);
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand(
            $"CREATE TABLE IF NOT EXISTS {MySqlSql.Quote(logTable)} (id INT NOT NULL PRIMARY KEY, ts TIMESTAMP(6) NOT NULL, value LONGTEXT NULL) ENGINE=InnoDB",
            connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task BeatAsync(CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand(
            $"INSERT INTO {MySqlSql.Quote(logTable)} (id, ts) VALUES ({HeartbeatId}, NOW(6)) ON DUPLICATE KEY UPDATE ts = NOW(6)", connection);
        long started = Stopwatch.GetTimestamp();
        Volatile.Write(ref _inFlightSince, started);
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _inFlightSince, 0);
        }

        lock (_recent)
        {
            _recent.Enqueue((started, Stopwatch.GetElapsedTime(started)));
            while (_recent.Count > 64)
            {
                _recent.Dequeue();
            }
        }

        Beats++;
    }

    /// <summary>
    /// The slowest heartbeat write that started within the window, counting one still in flight by how long it has
    /// waited so far. A heartbeat is a small autocommitted write, binlogged like the application's: its latency is
    /// what an application write sees, copy contention (CPU, commit queue) included.
    /// </summary>
    public TimeSpan SlowestRecentWrite(TimeSpan window)
    {
        long now = Stopwatch.GetTimestamp();
        long since = now - (long)(window.TotalSeconds * Stopwatch.Frequency);
        long inFlight = Volatile.Read(ref _inFlightSince);
        TimeSpan slowest = inFlight == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(inFlight, now);
        lock (_recent)
        {
            foreach ((long at, TimeSpan took) in _recent)
            {
                if (at >= since && took > slowest)
                {
                    slowest = took;
                }
            }
        }

        return slowest;
    }

    public void Start() => _loop ??= Task.Run(() => LoopAsync(_stop.Token));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            try
            {
                await _loop;
            }
            catch (OperationCanceledException)
            {
                // Stopping is the point.
            }
        }

        _stop.Dispose();
    }

    private async Task LoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await BeatAsync(cancellationToken);
            }
            catch (MySqlException)
            {
                // A missed beat shows up as lag on the replicas, which throttles: the safe direction.
            }

            await Task.Delay(interval, cancellationToken);
        }
    }
}
