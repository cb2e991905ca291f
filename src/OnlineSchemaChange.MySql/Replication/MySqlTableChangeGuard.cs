using System.Text.RegularExpressions;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>
/// Stops a migration whose original someone else alters, truncates, drops or renames meanwhile. Row events carry
/// rows, not definitions: an added column, index or option would otherwise be missing from the new table after the
/// swap without a word, and a TRUNCATE (logged as a statement) would never reach the shadow. So each statement in the
/// stream that names the table, other than osc's own on its &lt;table&gt;_osc_* tables, makes the guard compare the
/// table's definition (SHOW CREATE TABLE, without the AUTO_INCREMENT counter) with the one the shadow was built from;
/// the stream goes no further until it has. A statement that changes nothing (ANALYZE TABLE, OPTIMIZE TABLE) passes.
/// </summary>
public sealed partial class MySqlTableChangeGuard(string connectionString, TableName original, ShadowNames names, string baseline)
{
    private volatile bool disarmed;

    /// <summary>Reads the table's definition as the guard compares it, or null when there is no such table.</summary>
    public static async Task<string?> ReadDefinitionAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        try
        {
            await using var command = new MySqlCommand($"SHOW CREATE TABLE {MySqlSql.Quote(table)}", connection);
            await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            return await reader.ReadAsync(cancellationToken) ? AutoIncrementCounter().Replace(reader.GetString(1), "") : null;
        }
        catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchTable)
        {
            return null;
        }
    }

    /// <summary>After the swap the table is the new one, and osc's own statements about it are none of the guard's business.</summary>
    public void Disarm() => disarmed = true;

    /// <summary>Whether a statement read from the binlog names the original (and is not one of osc's own).</summary>
    public bool Concerns(QueryEvent statement)
    {
        ArgumentNullException.ThrowIfNull(statement);
        string sql = statement.Sql;
        return !sql.Contains(names.Table + "_osc_", StringComparison.OrdinalIgnoreCase)
               && (NamesTable(sql, original.Name) || NamesTable(sql, original.Name.Replace("`", "``", StringComparison.Ordinal)));
    }

    /// <summary>Throws <see cref="TableChangedException"/> when <paramref name="statement"/> concerns the original and changed it.</summary>
    public async Task CheckAsync(QueryEvent statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(statement);
        if (disarmed || !Concerns(statement))
        {
            return;
        }

        string seen = $"{statement.Sql} (binlog {statement.Coordinates.File}:{statement.Coordinates.Position})";
        if (statement.Sql.TrimStart().StartsWith("TRUNCATE", StringComparison.OrdinalIgnoreCase))
        {
            throw new TableChangedException($"{original} was truncated during the migration: {seen}. The binlog logs a TRUNCATE as a statement, which the replay cannot carry into the shadow.",
                "Do not empty the table while osc migrates it; run the migration again. osc removed its shadow and bookkeeping tables.");
        }

        await CheckNowAsync(seen, cancellationToken);
    }

    /// <summary>Compares the table's definition now with the one the shadow was built from; <paramref name="seen"/> says what prompted it.</summary>
    public async Task CheckNowAsync(string seen, CancellationToken cancellationToken)
    {
        if (disarmed)
        {
            return;
        }

        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        string? now = await ReadDefinitionAsync(connection, original, cancellationToken);
        if (disarmed || now == baseline)
        {
            return;
        }

        throw new TableChangedException(now is null
                ? $"{original} was dropped or renamed during the migration: {seen}."
                : $"{original} was altered during the migration: {seen}. Its definition is no longer the one the shadow was built from, and the new table would lack the change.",
            Hint);
    }

    /// <summary>
    /// When a run fails before the guard saw why (a copy chunk meeting a renamed table, say), whether the table changed:
    /// then that is the failure to report. Null when it did not, or when that cannot be told now.
    /// </summary>
    public async Task<TableChangedException?> FindChangeAsync(Exception failure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(failure);
        // Not after a lost connection: asking would only wait out the connect timeout to learn the same.
        if (failure is OscException || cancellationToken.IsCancellationRequested || Connection.MySqlConnectionLoss.Is(failure))
        {
            return null;
        }

        try
        {
            await CheckNowAsync($"found after the run failed with: {failure.Message}", cancellationToken);
            return null;
        }
        catch (TableChangedException changed)
        {
            return changed;
        }
        catch (MySqlException)
        {
            return null;
        }
    }

    private const string Hint = "Do not change the table while osc migrates it. Run the migration again on the table as it is now, with your change included in --alter if it is still wanted; osc removed its shadow and bookkeeping tables.";

    /// <summary>Whether <paramref name="sql"/> has <paramref name="table"/> as a whole identifier (quoted or not), case aside.</summary>
    internal static bool NamesTable(string sql, string table)
    {
        for (int at = sql.IndexOf(table, StringComparison.OrdinalIgnoreCase); at >= 0; at = sql.IndexOf(table, at + 1, StringComparison.OrdinalIgnoreCase))
        {
            int end = at + table.Length;
            if ((at == 0 || !IsIdentifierChar(sql[at - 1])) && (end == sql.Length || !IsIdentifierChar(sql[end])))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsIdentifierChar(char c) => char.IsLetterOrDigit(c) || c is '_' or '$';

    [GeneratedRegex(@" AUTO_INCREMENT=\d+")]
    private static partial Regex AutoIncrementCounter();
}
