using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// Sessions an interrupted run left behind on the server, and the lock that tells a live run from a dead one.
/// </summary>
public static class PostgresLeftoverSessions
{
    /// <summary>Ends what a killed run left working on <paramref name="shadow"/> (see <see cref="LeftoverSessions"/>).</summary>
    public static Task<IReadOnlyList<string>> EndAsync(NpgsqlConnection connection, TableName shadow, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(shadow);
        var catalog = new PostgresCatalog(connection);
        var control = new LeftoverSessionControl(
            async token =>
            {
                var found = new List<LeftoverSession>();
                await using var find = new NpgsqlCommand(
                    """
                    SELECT pid, left(query, 60) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                      AND state <> 'idle' AND strpos(query, $1) > 0
                    """, connection);
                find.Parameters.Add(new NpgsqlParameter { Value = PostgresSql.Quote(shadow) });
                await using NpgsqlDataReader reader = await find.ExecuteReaderAsync(token);
                while (await reader.ReadAsync(token))
                {
                    found.Add(new LeftoverSession(reader.GetInt32(0), reader.GetString(1)));
                }

                return found;
            },
            async (session, token) =>
            {
                // False (with a warning) for a backend that already ended; raises for one this user may not end.
                try
                {
                    await catalog.ScalarAsync<bool>("SELECT pg_terminate_backend($1)", token, (int)session.Id);
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
                {
                    throw new OscException(
                        $"Session {session.Id} is still working on {shadow} ({session.Statement}...), most likely left by an interrupted run, and this user may not end it.",
                        $"End it (SELECT pg_terminate_backend({session.Id})) as a superuser or a member of pg_signal_backend, then run again.");
                }
            },
            async (ids, token) => await catalog.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", token,
                ids.Select(i => (int)i).ToArray()) > 0,
            "pg_stat_activity");
        return LeftoverSessions.EndAsync(control, shadow.ToString(), cancellationToken);
    }

    /// <summary>
    /// Takes the lock one run per table holds for its whole life, on <paramref name="connection"/>: an advisory lock,
    /// which the server frees when the connection ends, kill -9 included. While a live run holds it, refuses, naming
    /// the backend that holds it and what it is doing: after a kill -9 mid-statement that backend goes on until its
    /// statement ends.
    /// </summary>
    /// <param name="consequence">Why the caller must not go on meanwhile, a sentence, or null.</param>
    public static async Task HoldRunLockAsync(NpgsqlConnection connection, PostgresReplicationNames names, string? consequence, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(names);
        var catalog = new PostgresCatalog(connection);
        string name = RunLockName(names);
        // A run that has just ended may still hold the lock for a moment: its server process goes after its client.
        // Two seconds, as on MySQL, separate that from a run still going.
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        while (!await catalog.ScalarAsync<bool>("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", cancellationToken, name))
        {
            if (DateTime.UtcNow >= until)
            {
                throw await RunInProgressAsync(connection, names, name, consequence, cancellationToken);
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>The refusal, naming the backend that holds the run lock and what it is doing.</summary>
    private static async Task<OscException> RunInProgressAsync(NpgsqlConnection connection, PostgresReplicationNames names, string name, string? consequence,
        CancellationToken cancellationToken)
    {
        string? holder = null;
        int? pid = null;
        // A bigint advisory key shows in pg_locks as its high and low halves.
        await using (var who = new NpgsqlCommand(
                         """
                         SELECT a.pid, a.state, left(a.query, 60), extract(epoch FROM now() - a.state_change)::int
                         FROM (SELECT hashtextextended($1, 0) AS key) k
                         JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                          AND l.classid = ((k.key >> 32) & 4294967295)::oid AND l.objid = (k.key & 4294967295)::oid
                         JOIN pg_stat_activity a ON a.pid = l.pid
                         """, connection))
        {
            who.Parameters.Add(new NpgsqlParameter { Value = name });
            await using NpgsqlDataReader reader = await who.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
            {
                pid = reader.GetInt32(0);
                string state = reader.IsDBNull(1) ? "unknown" : reader.GetString(1);
                string seconds = reader.IsDBNull(3) ? "?" : reader.GetInt32(3).ToString(System.Globalization.CultureInfo.InvariantCulture);
                string doing = state == "active" && !reader.IsDBNull(2) ? $"running {reader.GetString(2)}... for {seconds} s" : $"{state} for {seconds} s";
                holder = $"backend {pid} holds its advisory lock {name} ({doing})";
            }
        }

        return LeftoverSessions.RunInProgress(names.Table.ToString(), $"the advisory lock for {name}", holder, consequence,
            pid is null ? null : $"SELECT pg_terminate_backend({pid})");
    }

    public static string RunLockName(PostgresReplicationNames names)
    {
        ArgumentNullException.ThrowIfNull(names);
        return "osc-run." + names.Slot;
    }
}
