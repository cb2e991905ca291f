using System.Globalization;
using Npgsql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>One-line SQL for tests against the PostgreSQL servers: each call on its own short connection.</summary>
internal static class PgSql
{
    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>The first column of the first row as invariant text ("" for NULL or no row).</summary>
    public static async Task<string> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToString(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture) ?? "";
    }

    /// <summary>An application reading table t in a loop until <paramref name="stop"/>; returns its slowest statement.</summary>
    public static async Task<TimeSpan> SlowestReadAsync(string connectionString, CancellationToken stop)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        TimeSpan slowest = TimeSpan.Zero;
        while (!stop.IsCancellationRequested)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await using (var command = new NpgsqlCommand("SELECT count(*) FROM t WHERE id < 10", connection))
            {
                await command.ExecuteScalarAsync(CancellationToken.None);
            }

            slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
            await Task.Delay(20, CancellationToken.None);
        }

        return slowest;
    }

    /// <summary>Rows of <paramref name="a"/> not in <paramref name="b"/> plus the reverse: 0 when the two hold the same rows.</summary>
    public static async Task<long> DifferenceAsync(string connectionString, string a, string b) =>
        long.Parse(await ScalarAsync(connectionString,
            $"SELECT (SELECT count(*) FROM (TABLE {a} EXCEPT ALL TABLE {b}) x) + (SELECT count(*) FROM (TABLE {b} EXCEPT ALL TABLE {a}) y)"), CultureInfo.InvariantCulture);

    /// <summary>Our slots and publications left on the server (their names start with osc_).</summary>
    public static async Task<string> LeftoversAsync(string connectionString) => await ScalarAsync(connectionString, """
        SELECT concat_ws(',', (SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE slot_name LIKE 'osc\_%' AND database = current_database()),
                              (SELECT string_agg(pubname, ',') FROM pg_publication WHERE pubname LIKE 'osc\_%'))
        """);

    /// <summary>The postgres:// URI osc takes for the database of <paramref name="connectionString"/>, password included.</summary>
    public static string OscUri(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return $"postgres://{Uri.EscapeDataString(builder.Username!)}:{Uri.EscapeDataString(builder.Password!)}@{builder.Host}:{builder.Port}/{builder.Database}";
    }
}
