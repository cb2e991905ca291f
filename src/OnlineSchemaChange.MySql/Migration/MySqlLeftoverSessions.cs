using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>
/// Sessions an interrupted run left behind on the server, and the lock that tells a live run from a dead one.
/// </summary>
public static class MySqlLeftoverSessions
{
    /// <summary>Ends what a killed run left working on <paramref name="shadow"/> (see <see cref="LeftoverSessions"/>).</summary>
    public static Task<IReadOnlyList<string>> EndAsync(MySqlConnection connection, TableName shadow, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(shadow);
        var control = new LeftoverSessionControl(
            async token =>
            {
                var found = new List<LeftoverSession>();
                await using var find = new MySqlCommand(
                    "SELECT ID, LEFT(INFO, 60) FROM information_schema.PROCESSLIST " +
                    "WHERE ID <> CONNECTION_ID() AND DB = @schema AND INFO IS NOT NULL AND LOCATE(@shadow, INFO) > 0", connection);
                find.Parameters.AddWithValue("@schema", shadow.Schema);
                find.Parameters.AddWithValue("@shadow", MySqlSql.Quote(shadow.Name));
                await using MySqlDataReader reader = await find.ExecuteReaderAsync(token);
                while (await reader.ReadAsync(token))
                {
                    found.Add(new LeftoverSession(Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), reader.GetString(1)));
                }

                return found;
            },
            async (session, token) =>
            {
                try
                {
                    await using var kill = new MySqlCommand($"KILL CONNECTION {session.Id.ToString(CultureInfo.InvariantCulture)}", connection);
                    await kill.ExecuteNonQueryAsync(token);
                }
                catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchThread)
                {
                    // It ended by itself in between.
                }
                catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.KillDenied or MySqlErrorCode.SpecifiedAccessDeniedError)
                {
                    throw new OscException(
                        $"Session {session.Id} is still working on {shadow} ({session.Statement}...), most likely left by an interrupted run, and this user may not end it.",
                        $"End it (KILL CONNECTION {session.Id}) as a user with the CONNECTION ADMIN or SUPER privilege, then run again.");
                }
            },
            async (ids, token) =>
            {
                await using var listed = new MySqlCommand(
                    $"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({string.Join(", ", ids.Select(i => i.ToString(CultureInfo.InvariantCulture)))})", connection);
                return Convert.ToInt64(await listed.ExecuteScalarAsync(token), CultureInfo.InvariantCulture) > 0;
            },
            "SHOW PROCESSLIST");
        return LeftoverSessions.EndAsync(control, shadow.ToString(), cancellationToken);
    }

    /// <summary>
    /// Takes the lock one run per table holds for its whole life, on <paramref name="connection"/> (the server frees it
    /// when the connection ends, kill -9 included). While a live run holds it, refuses, naming the session that holds
    /// it and what it is doing: after a kill -9 mid-statement that session goes on until its statement ends.
    /// </summary>
    /// <param name="consequence">Why the caller must not go on meanwhile, a sentence, or null.</param>
    public static async Task HoldRunLockAsync(MySqlConnection connection, TableName original, string? consequence, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(original);
        string name = RunLockName(original);
        await using (var take = new MySqlCommand("SELECT GET_LOCK(@n, 2)", connection))
        {
            take.Parameters.AddWithValue("@n", name);
            if (Convert.ToInt64(await take.ExecuteScalarAsync(cancellationToken) ?? 0L, CultureInfo.InvariantCulture) == 1)
            {
                return;
            }
        }

        string? holder = null;
        long? id = null;
        await using (var who = new MySqlCommand(
                         "SELECT p.ID, p.COMMAND, p.TIME, LEFT(p.INFO, 60) FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(@n)", connection))
        {
            who.Parameters.AddWithValue("@n", name);
            await using MySqlDataReader reader = await who.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
            {
                id = Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture);
                string doing = reader.IsDBNull(3) ? $"{reader.GetString(1).ToLowerInvariant()} for {reader.GetValue(2)} s" : $"running {reader.GetString(3)}... for {reader.GetValue(2)} s";
                holder = $"session {id} holds its lock {name} ({doing})";
            }
        }

        throw LeftoverSessions.RunInProgress(original.ToString(), $"the lock {name}", holder, consequence, id is null ? null : $"KILL {id}");
    }

    public static string RunLockName(TableName original)
    {
        ArgumentNullException.ThrowIfNull(original);
        string name = $"osc-run.{original.Schema}.{original.Name}";
        return name.Length > 64 ? name[..64] : name;
    }
}
