using Npgsql;

namespace OnlineSchemaChange.Postgres.Cutover;

/// <summary>
/// Names who holds up a lock request on a table, for the error when it times out: the swap's LOCK and a catalog-only
/// ALTER both wait on the same long transactions. A courtesy for the message: it never fails the request it watches.
/// </summary>
internal sealed class PostgresLockWatch(string connectionString, uint table)
{
    /// <summary>While the session <paramref name="pid"/> waits, who blocks it: pg_blocking_pids with what those sessions run; the last seen.</summary>
    public async Task<string?> WatchBlockersAsync(int pid, int lockMs, CancellationToken cancellationToken)
    {
        string? last = null;
        try
        {
            // Not at once: most locks are granted in milliseconds, and the watch would compete with them for the CPU.
            await Task.Delay(Math.Min(50, lockMs / 4), cancellationToken);
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            while (!cancellationToken.IsCancellationRequested)
            {
                last = await ScalarAsync(connection,
                    """
                    SELECT string_agg(format('pid %s (%s, %s for %s s): %s', a.pid, a.usename, a.state,
                                             round(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::numeric, 1), left(a.query, 200)), '; ')
                    FROM unnest(pg_blocking_pids($1)) b(pid) JOIN pg_stat_activity a ON a.pid = b.pid
                    """, cancellationToken, new NpgsqlParameter { Value = pid }) ?? last;
                await Task.Delay(25, cancellationToken);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or NpgsqlException)
        {
            // Cancelled once the request is granted or has failed; a watch that cannot look says nothing.
        }

        return last;
    }

    /// <summary>The sessions other than <paramref name="pid"/> holding a lock on the table, described as the watch describes blockers.</summary>
    public async Task<string?> HoldersAsync(int pid, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            return await ScalarAsync(connection,
                """
                SELECT string_agg(DISTINCT format('pid %s (%s, %s for %s s): %s', a.pid, a.usename, a.state,
                                  round(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::numeric, 1), left(a.query, 200)), '; ')
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'relation' AND l.relation = $1 AND l.granted AND l.pid <> $2
                """, cancellationToken, new NpgsqlParameter { Value = table, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid }, new NpgsqlParameter { Value = pid });
        }
        catch (NpgsqlException)
        {
            return null;
        }
    }

    private static async Task<string?> ScalarAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params NpgsqlParameter[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddRange(parameters);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }
}
