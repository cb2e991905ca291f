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
    /// when the connection ends, kill -9 included). False when a live run holds it.
    /// </summary>
    public static async Task<bool> TryHoldRunLockAsync(MySqlConnection connection, TableName original, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(original);
        await using var command = new MySqlCommand("SELECT GET_LOCK(@n, 2)", connection);
        command.Parameters.AddWithValue("@n", RunLockName(original));
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken) ?? 0L, CultureInfo.InvariantCulture) == 1;
    }

    public static string RunLockName(TableName original)
    {
        ArgumentNullException.ThrowIfNull(original);
        string name = $"osc-run.{original.Schema}.{original.Name}";
        return name.Length > 64 ? name[..64] : name;
    }
}
