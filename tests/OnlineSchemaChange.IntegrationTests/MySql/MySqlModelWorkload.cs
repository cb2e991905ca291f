using System.Globalization;
using System.Text;
using MySqlConnector;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// An application writing to t (id, k, c): inserts, updates of k and c, primary-key changes and deletes, one in ten
/// transactions three statements long. It keeps the table as it should be after each acknowledged commit, so a test
/// can check that the table holds every acknowledged write and nothing else.
/// </summary>
internal sealed class MySqlModelWorkload
{
    private readonly Dictionary<long, (long K, string C)> _rows = [];
    private readonly Random _random = new(17);
    private long _nextId = 10_000_000;
    private int _transactions;

    public int Transactions => Volatile.Read(ref _transactions);

    public int Failed { get; private set; }

    public int KeyMoves { get; private set; }

    public static async Task<MySqlModelWorkload> LoadAsync(string connectionString)
    {
        var workload = new MySqlModelWorkload();
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand("SELECT id, k, c FROM t", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            workload._rows[Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture)] =
                (Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture), reader.GetString(2));
        }

        return workload;
    }

    public async Task<MySqlModelWorkload> RunAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        while (!cancellationToken.IsCancellationRequested)
        {
            var changes = new Dictionary<long, (long K, string C)?>();
            var sql = new StringBuilder("START TRANSACTION;\n");
            int statements = _random.Next(10) == 0 ? 3 : 1;
            int moves = 0;
            for (int s = 0; s < statements; s++)
            {
                sql.Append(NextStatement(changes, ref moves)).Append(";\n");
            }

            sql.Append("COMMIT;");
            try
            {
                await using var command = new MySqlCommand(sql.ToString(), connection);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
                foreach (var (id, row) in changes)
                {
                    if (row is { } value)
                    {
                        _rows[id] = value;
                    }
                    else
                    {
                        _rows.Remove(id);
                    }
                }

                KeyMoves += moves;
                Interlocked.Increment(ref _transactions);
            }
            catch (MySqlException)
            {
                Failed++;
                await using var rollback = new MySqlCommand("ROLLBACK", connection);
                await rollback.ExecuteNonQueryAsync(CancellationToken.None);
            }

            await Task.Delay(1, CancellationToken.None);
        }

        return this;
    }

    /// <summary>The table holds exactly the rows of every acknowledged commit.</summary>
    public async Task AssertMatchesAsync(string connectionString)
    {
        var actual = new Dictionary<long, (long K, string C)>();
        await using (var connection = new MySqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await using var command = new MySqlCommand("SELECT id, k, c FROM t", connection);
            await using MySqlDataReader reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                actual[Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture)] =
                    (Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture), reader.GetString(2));
            }
        }

        Assert.Equal(_rows.Count, actual.Count);
        var missing = _rows.Where(r => !actual.TryGetValue(r.Key, out var a) || a != r.Value).Take(5).ToList();
        Assert.True(missing.Count == 0, "rows that differ from the acknowledged writes: " + string.Join("; ", missing.Select(m =>
            $"{m.Key}: expected {m.Value}, found {(actual.TryGetValue(m.Key, out var a) ? a.ToString() : "none")}")));
    }

    private string NextStatement(Dictionary<long, (long K, string C)?> changes, ref int moves)
    {
        (long K, string C)? Current(long id) => changes.TryGetValue(id, out var c) ? c : _rows.TryGetValue(id, out var r) ? r : null;
        long Existing()
        {
            for (int tries = 0; ; tries++)
            {
                long id = tries < 50 ? 1 + _random.Next(30_000) : _rows.Keys.ElementAt(_random.Next(_rows.Count));
                if (Current(id) is not null)
                {
                    return id;
                }
            }
        }

        int op = _random.Next(100);
        if (op < 25)
        {
            long id = _nextId++;
            changes[id] = (id % 13, "new-" + id);
            return $"INSERT INTO t (id, k, c) VALUES ({id}, {id % 13}, 'new-{id}')";
        }

        long target = Existing();
        var row = Current(target)!.Value;
        if (op < 55)
        {
            changes[target] = (row.K + 1, row.C);
            return $"UPDATE t SET k = k + 1 WHERE id = {target}";
        }

        if (op < 65)
        {
            string c = $"set-{target}-{_random.Next(1000)}";
            changes[target] = (row.K, c);
            return $"UPDATE t SET c = '{c}' WHERE id = {target}";
        }

        if (op < 85)
        {
            long moved = _nextId++;
            changes[target] = null;
            changes[moved] = row;
            moves++;
            return $"UPDATE t SET id = {moved} WHERE id = {target}";
        }

        changes[target] = null;
        return $"DELETE FROM t WHERE id = {target}";
    }
}
