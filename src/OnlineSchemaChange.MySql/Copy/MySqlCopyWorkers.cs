using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.MySql.Copy;

/// <summary>
/// How many copy workers can run at once. Under innodb_autoinc_lock_mode 0 or 1 (MariaDB's default is 1), an
/// INSERT ... SELECT into a table with an AUTO_INCREMENT column holds that table's AUTO-INC lock until the statement
/// ends, whether or not it supplies the values. Parallel chunks then run one after another, each also holding up the
/// replay's inserts, and a chunk waiting on a row lock stops every other chunk with it. So the copy runs one worker
/// there and says why; mode 2 (safe with binlog_format = ROW, which osc requires) takes no such lock.
/// </summary>
public static class MySqlCopyWorkers
{
    /// <summary>The workers to run for a copy into <paramref name="shadow"/>, and a note when fewer than asked.</summary>
    public static async Task<(int Workers, string? Note)> ChooseAsync(MySqlConnection connection, TableName shadow, int requested,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(shadow);
        if (requested <= 1)
        {
            return (requested, null);
        }

        await using var command = new MySqlCommand(
            "SELECT @@innodb_autoinc_lock_mode, (SELECT COLUMN_NAME FROM information_schema.COLUMNS " +
            "WHERE TABLE_SCHEMA = @schema AND TABLE_NAME = @table AND EXTRA LIKE '%auto_increment%' LIMIT 1)", connection);
        command.Parameters.AddWithValue("@schema", shadow.Schema);
        command.Parameters.AddWithValue("@table", shadow.Name);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        long mode = Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture);
        if (mode >= 2 || reader.IsDBNull(1))
        {
            return (requested, null);
        }

        string column = reader.GetString(1);
        return (1, $"Copied with one worker instead of {requested}: with innodb_autoinc_lock_mode = {mode}, each INSERT ... SELECT into the " +
                   $"shadow holds its AUTO-INC lock (column {column}) until it ends, so parallel chunks would only wait for each other. " +
                   "innodb_autoinc_lock_mode = 2 (a server restart; safe with binlog_format = ROW) lets them run in parallel.");
    }
}
