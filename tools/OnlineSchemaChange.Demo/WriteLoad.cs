using System.Collections.Concurrent;
using System.Diagnostics;
using MySqlConnector;

/// <summary>
/// A sysbench-shaped write load on sbtest1 at a fixed rate (each transaction: an indexed update, a non-indexed
/// update, a delete and a re-insert of one row), recording every transaction's latency by second, so the demo can show
/// what the application felt before, during and after the ALTER.
/// </summary>
internal sealed class WriteLoad(string connectionString, int rows, int threads, int transactionsPerSecond)
{
    private readonly ConcurrentDictionary<long, ConcurrentBag<double>> _latencyBySecond = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _failed;

    public long Failed => Interlocked.Read(ref _failed);

    public TimeSpan Now => _clock.Elapsed;

    public Task RunAsync(CancellationToken cancellationToken) =>
        Task.WhenAll(Enumerable.Range(0, threads).Select(worker => WorkerAsync(worker, cancellationToken)));

    /// <summary>
    /// The transactions completed in whole seconds <paramref name="fromSecond"/> to <paramref name="toSecond"/>
    /// (exclusive) of the load, their worst one-second p99 and the slowest of them, in milliseconds.
    /// </summary>
    public (int Transactions, double WorstSecondP99, double Max) Summarize(long fromSecond, long toSecond)
    {
        var seconds = _latencyBySecond.Where(p => p.Key >= fromSecond && p.Key < toSecond).Select(p => p.Value.ToArray()).ToList();
        var all = seconds.SelectMany(s => s).ToList();
        double worst = seconds.Where(s => s.Length > 0).Select(s => Percentile(s, 0.99)).DefaultIfEmpty(0).Max();
        return (all.Count, worst, all.DefaultIfEmpty(0).Max());
    }

    private async Task WorkerAsync(int worker, CancellationToken cancellationToken)
    {
        var random = new Random(worker);
        var interval = TimeSpan.FromSeconds((double)threads / transactionsPerSecond);
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        TimeSpan next = _clock.Elapsed;
        while (!cancellationToken.IsCancellationRequested)
        {
            next += interval;
            TimeSpan wait = next - _clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            int id = random.Next(1, rows + 1);
            long started = Stopwatch.GetTimestamp();
            try
            {
                await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None);
                foreach (string sql in new[]
                {
                    $"UPDATE sbtest1 SET k = k + 1 WHERE id = {id}",
                    $"UPDATE sbtest1 SET c = CONCAT(LEFT(c, 100), '{random.Next(100000):D5}') WHERE id = {random.Next(1, rows + 1)}",
                    $"DELETE FROM sbtest1 WHERE id = {id}",
                    $"INSERT INTO sbtest1 (id, k, c, pad) VALUES ({id}, {random.Next(rows)}, 'demo', 'demo')",
                })
                {
                    await using var command = new MySqlCommand(sql, connection, transaction);
                    await command.ExecuteNonQueryAsync(CancellationToken.None);
                }

                await transaction.CommitAsync(CancellationToken.None);
                _latencyBySecond.GetOrAdd((long)_clock.Elapsed.TotalSeconds, _ => []).Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            catch (MySqlException)
            {
                Interlocked.Increment(ref _failed);
            }
        }
    }

    private static double Percentile(double[] values, double p)
    {
        Array.Sort(values);
        return values[Math.Min(values.Length - 1, (int)Math.Ceiling(p * values.Length) - 1)];
    }
}
