using System.Data.Common;
using System.Diagnostics;

namespace OnlineSchemaChange.EndToEnd;

/// <summary>
/// One single-row write after another, 10 ms apart, on a connection of its own, each timed: the longest any of them
/// took is the longest stall the application saw, to the millisecond, where sysbench and pgbench report per second.
/// A write to a random row of the altered table waits for every lock an ALTER takes on it (a native ALTER's whole
/// length, a swap's hold), and for ordinary contention on that row like any other.
/// </summary>
public sealed class WriteProbe : IAsyncDisposable
{
    private readonly List<(DateTime Start, TimeSpan Latency)> _writes = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly DbConnection _connection;
    private Task _loop = Task.CompletedTask;

    private WriteProbe(DbConnection connection) => _connection = connection;

    public int Errors { get; private set; }

    /// <param name="sql">One write with one parameter, @id, a key between 1 and <paramref name="rows"/>.</param>
    public static async Task<WriteProbe> StartAsync(DbConnection connection, string sql, int rows, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await connection.OpenAsync(cancellationToken);
        var probe = new WriteProbe(connection);
        probe._loop = probe.RunAsync(sql, rows);
        return probe;
    }

    /// <summary>The longest write that was running at any moment between <paramref name="from"/> and <paramref name="to"/>.</summary>
    public TimeSpan Longest(DateTime from, DateTime to)
    {
        lock (_writes)
        {
            return _writes.Where(w => w.Start <= to && w.Start + w.Latency >= from).Select(w => w.Latency).DefaultIfEmpty(TimeSpan.Zero).Max();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        await _connection.DisposeAsync();
        _stop.Dispose();
    }

    private async Task RunAsync(string sql, int rows)
    {
        var random = new Random(7);
        await using DbCommand command = _connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 120;
        DbParameter id = command.CreateParameter();
        id.ParameterName = "id";
        command.Parameters.Add(id);
        while (!_stop.IsCancellationRequested)
        {
            id.Value = 1 + random.Next(Math.Max(1, rows));
            DateTime start = DateTime.UtcNow;
            long started = Stopwatch.GetTimestamp();
            try
            {
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }
            catch (DbException)
            {
                Errors++;
            }

            lock (_writes)
            {
                _writes.Add((start, Stopwatch.GetElapsedTime(started)));
            }

            try
            {
                await Task.Delay(10, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }
}
