using System.Text.RegularExpressions;
using MySqlConnector;

namespace OnlineSchemaChange.LocalServers;

/// <summary>SQL shared by the local and the container MariaDB: the test account and replication from a primary.</summary>
internal static partial class MariaDbSetup
{
    /// <summary>
    /// Creates the account the tests use. Not binlogged, so that a replica's GTID history starts with the tests' own
    /// writes; each server gets the account from its own setup instead.
    /// </summary>
    public static async Task CreateAccountAsync(string adminConnectionString, string user, string password, CancellationToken cancellationToken)
    {
        if (!PlainName().IsMatch(user))
        {
            throw new ArgumentException($"User name '{user}' must be letters, digits and underscores.", nameof(user));
        }

        await using var connection = new MySqlConnection(adminConnectionString);
        await connection.OpenAsync(cancellationToken);
        await ExecuteAsync(connection, "SET SESSION sql_log_bin = 0", cancellationToken);

        // mariadb-install-db leaves password-less root accounts for 127.0.0.1 and ::1: anyone on the machine could use them.
        var roots = new List<string>();
        await using (var command = new MySqlCommand("SELECT Host FROM mysql.user WHERE User = 'root' AND Host NOT IN ('localhost', '%')", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                roots.Add(reader.GetString(0));
            }
        }

        foreach (var host in roots)
        {
            await ExecuteAsync(connection, $"DROP USER 'root'@'{MySqlHelper.EscapeString(host)}'", cancellationToken);
        }

        var secret = MySqlHelper.EscapeString(password);
        foreach (var host in new[] { "%", "localhost" })
        {
            await ExecuteAsync(connection, $"CREATE OR REPLACE USER '{user}'@'{host}' IDENTIFIED BY '{secret}'", cancellationToken);
            await ExecuteAsync(connection, $"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}' WITH GRANT OPTION", cancellationToken);
        }
    }

    /// <summary>Points the replica at the primary by GTID and waits until both threads run and it has caught up.</summary>
    public static async Task ReplicateAsync(
        string replicaConnectionString,
        string primaryConnectionString,
        string primaryHost,
        int primaryPort,
        string user,
        string password,
        TimeSpan timeout,
        Task<string>? replicaEnded,
        CancellationToken cancellationToken)
    {
        await using var replica = new MySqlConnection(replicaConnectionString);
        await replica.OpenAsync(cancellationToken);
        await ExecuteAsync(
            replica,
            $"CHANGE MASTER TO MASTER_HOST='{MySqlHelper.EscapeString(primaryHost)}', MASTER_PORT={primaryPort}, " +
            $"MASTER_USER='{MySqlHelper.EscapeString(user)}', MASTER_PASSWORD='{MySqlHelper.EscapeString(password)}', " +
            "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
            cancellationToken);
        await ExecuteAsync(replica, "START SLAVE", cancellationToken);

        string lastStatus = "";
        try
        {
            await Poll.UntilAsync("Slave_IO_Running and Slave_SQL_Running are Yes", async token =>
            {
                await using var command = new MySqlCommand("SHOW SLAVE STATUS", replica);
                await using var reader = await command.ExecuteReaderAsync(token);
                if (!await reader.ReadAsync(token))
                {
                    return false;
                }

                var io = reader.GetString("Slave_IO_Running");
                var sql = reader.GetString("Slave_SQL_Running");
                lastStatus = $"Slave_IO_Running={io}, Slave_SQL_Running={sql}, Last_IO_Error={reader.GetString("Last_IO_Error")}, " +
                             $"Last_SQL_Error={reader.GetString("Last_SQL_Error")}";
                return io == "Yes" && sql == "Yes";
            }, timeout, replicaEnded, cancellationToken);
        }
        catch (LocalServerException e)
        {
            throw new LocalServerException($"{e.Message} {lastStatus}", e);
        }

        // Caught up with whatever the primary had when the replica started, so a test's first read is not racing setup.
        string position;
        await using (var primary = new MySqlConnection(primaryConnectionString))
        {
            await primary.OpenAsync(cancellationToken);
            await using var command = new MySqlCommand("SELECT @@gtid_binlog_pos", primary);
            position = Convert.ToString(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture) ?? "";
        }

        await using (var wait = new MySqlCommand("SELECT MASTER_GTID_WAIT(@position, @seconds)", replica))
        {
            wait.Parameters.AddWithValue("@position", position);
            wait.Parameters.AddWithValue("@seconds", timeout.TotalSeconds);
            var result = Convert.ToInt32(await wait.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
            if (result != 0)
            {
                throw new LocalServerException($"the replica did not reach the primary's GTID position {position} within {timeout.TotalSeconds:0}s.");
            }
        }
    }

    private static async Task ExecuteAsync(MySqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [GeneratedRegex("^[A-Za-z0-9_]+$")]
    private static partial Regex PlainName();
}
