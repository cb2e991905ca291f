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
