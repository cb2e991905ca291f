using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// Sessions an interrupted run left behind on the server, and the lock that tells a live run from a dead one.
/// </summary>
public static class PostgresLeftoverSessions
{
    /// <summary>
    /// Ends the statements a killed run left working on the shadow, and waits until they are gone (their transactions
    /// rolled back). A backend notices its lost client only when it next writes to it, so a copy chunk or replay
    /// batch that was waiting on a lock when its process died waits on, then commits rows it read before the kill, in
    /// the middle of a resumed run (or holds the table a cleanup must drop). The caller holds the run lock, so no live run of ours works there. Returns a
    /// note per statement ended.
    /// </summary>
    public static async Task<IReadOnlyList<string>> EndAsync(NpgsqlConnection connection, TableName shadow, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(shadow);
        var leftovers = new List<(int Pid, string Statement)>();
        await using (var find = new NpgsqlCommand(
                         """
                         SELECT pid, left(query, 60) FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                           AND state <> 'idle' AND strpos(query, $1) > 0
                         """, connection))
        {
            find.Parameters.Add(new NpgsqlParameter { Value = PostgresSql.Quote(shadow) });
            await using NpgsqlDataReader reader = await find.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                leftovers.Add((reader.GetInt32(0), reader.GetString(1)));
            }
        }

        if (leftovers.Count == 0)
        {
            return [];
        }

        var catalog = new PostgresCatalog(connection);
        int[] pids = leftovers.Select(l => l.Pid).ToArray();
        // pg_terminate_backend is false (with a warning) for a backend that already ended, and raises for one this
        // user may not end.
        try
        {
            await catalog.ScalarAsync<bool>("SELECT coalesce(bool_and(pg_terminate_backend(p)), true) FROM unnest($1::int[]) p", cancellationToken, pids);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            throw new OscException(
                $"Sessions {string.Join(", ", pids)} are still working on {shadow}, most likely left by the interrupted run, and this user may not end them.",
                $"End them (SELECT pg_terminate_backend(pid)) as a superuser or a member of pg_signal_backend, then run again.");
        }

        var deadline = DateTime.UtcNow + LeftoverRollbackWait;
        while (await catalog.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", cancellationToken, pids) > 0)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new OscException($"The sessions {string.Join(", ", pids)} the interrupted run left working on {shadow} were ended but are still there.",
                    "Wait until they leave pg_stat_activity, then run again.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }

        return leftovers.Select(l => $"Ended session {l.Pid}, which an interrupted run had left working on the shadow ({l.Statement}...).").ToList();
    }

    private static readonly TimeSpan LeftoverRollbackWait = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Takes the lock one run per table holds for its whole life, on <paramref name="connection"/>: an advisory lock,
    /// which the server frees when the connection ends, kill -9 included. False when a live run holds it.
    /// </summary>
    public static Task<bool> TryHoldRunLockAsync(NpgsqlConnection connection, PostgresReplicationNames names, CancellationToken cancellationToken) =>
        new PostgresCatalog(connection).ScalarAsync<bool>("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", cancellationToken, RunLockName(names));

    public static string RunLockName(PostgresReplicationNames names)
    {
        ArgumentNullException.ThrowIfNull(names);
        return "osc-run." + names.Slot;
    }
}
