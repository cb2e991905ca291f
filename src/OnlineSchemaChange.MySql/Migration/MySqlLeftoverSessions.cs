using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>
/// Sessions an interrupted run left behind on the server, and the lock that tells a live run from a dead one.
/// </summary>
public static class MySqlLeftoverSessions
{
    /// <summary>
    /// Ends the statements a killed run left writing to the shadow, and waits for their rollback. The server notices a
    /// lost client only when it next writes to it, so a copy chunk or replay batch that was waiting on a row lock when
    /// its process died waits on, then commits rows it read before the kill, in the middle of a resumed run (or holds
    /// the table a cleanup must drop). The caller holds the run lock, so no live run of ours writes there. Returns a
    /// note per statement ended.
    /// </summary>
    public static async Task<IReadOnlyList<string>> EndAsync(MySqlConnection connection, TableName shadow, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(shadow);
        var leftovers = new List<(long Id, string Statement)>();
        await using (var find = new MySqlCommand(
                         "SELECT ID, LEFT(INFO, 60) FROM information_schema.PROCESSLIST " +
                         "WHERE ID <> CONNECTION_ID() AND DB = @schema AND INFO IS NOT NULL AND LOCATE(@shadow, INFO) > 0", connection))
        {
            find.Parameters.AddWithValue("@schema", shadow.Schema);
            find.Parameters.AddWithValue("@shadow", MySqlSql.Quote(shadow.Name));
            await using MySqlDataReader reader = await find.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                leftovers.Add((Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), reader.GetString(1)));
            }
        }

        foreach ((long id, string statement) in leftovers)
        {
            try
            {
                await using var kill = new MySqlCommand($"KILL CONNECTION {id.ToString(CultureInfo.InvariantCulture)}", connection);
                await kill.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchThread)
            {
                // It ended by itself in between.
            }
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.KillDenied or MySqlErrorCode.SpecifiedAccessDeniedError)
            {
                throw new OscException(
                    $"Session {id} is still writing to {shadow} ({statement}...), most likely left by the interrupted run, and this user may not end it.",
                    $"End it (KILL CONNECTION {id}) as a user with the CONNECTION ADMIN or SUPER privilege, then run again.");
            }
        }

        if (leftovers.Count == 0)
        {
            return [];
        }

        // A killed session stays listed until its transaction has rolled back.
        string ids = string.Join(", ", leftovers.Select(l => l.Id.ToString(CultureInfo.InvariantCulture)));
        var deadline = DateTime.UtcNow + LeftoverRollbackWait;
        await using var listed = new MySqlCommand($"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({ids})", connection);
        while (Convert.ToInt64(await listed.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) > 0)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new OscException($"The sessions {ids} the interrupted run left writing to {shadow} were ended but are still rolling back.",
                    "Wait until they leave SHOW PROCESSLIST, then run again.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }

        return leftovers.Select(l => $"Ended session {l.Id}, which an interrupted run had left writing to the shadow ({l.Statement}...).").ToList();
    }

    private static readonly TimeSpan LeftoverRollbackWait = TimeSpan.FromMinutes(5);

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
