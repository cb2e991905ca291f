using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using MySqlConnector;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Copy;

/// <summary>
/// The shadow's plain secondary indexes are dropped before the copy and built after it. Inserting a million rows in key
/// order into a table that also keeps an index on a column of random values (sysbench's k) costs the server more than
/// twice as much CPU as inserting them without it and sorting the index afterwards (measured on MariaDB 10.11: 6.7 s
/// against 2.8 s plus 1.1 s). Non-unique B-tree indexes are deferred, and the unique keys the original already enforces
/// that two rows of different keys can collide on; the primary key and the unique key the copy and the replay find rows
/// by stay, and full-text and spatial indexes are left as they are. An index a foreign key needs cannot be dropped and
/// stays.
/// </summary>
/// <remarks>
/// The definitions are saved in the bookkeeping table before any index is dropped, and the build adds only those still
/// missing, so a run interrupted at any point is completed by its resume. Each is re-added with the definition line
/// the server itself printed (SHOW CREATE TABLE), so prefix lengths, order, comments, visibility and the index type
/// come back exactly.
/// </remarks>
public static partial class MySqlDeferredIndexes
{
    /// <summary>The bookkeeping table's row that holds the deferred definitions (heartbeat 1, checkpoint 2, commit marker 3).</summary>
    public const int RowId = 5;

    /// <summary>
    /// Whether to defer them: <paramref name="requested"/> when given; otherwise only when no replica is watched, or
    /// when MariaDB replicates an ALTER in two phases (binlog_alter_two_phase), so its replicas start the build when the
    /// primary does. Else a replica runs the build as one statement after the primary has finished it, and applies
    /// nothing else meanwhile: on a large table that is a replica lag as long as the build, which the throttler, having
    /// nothing left to pause, cannot prevent. Kept in the shadow, the indexes are filled chunk by chunk instead.
    /// </summary>
    /// <returns>The decision, and when indexes stay for the copy, a note saying why and how to change it.</returns>
    /// <param name="keep">An index of osc's own that the replay needs during the copy (ShadowNames.ReplayKey): never deferred.</param>
    public static async Task<(bool Defer, string? Note)> DecideAsync(MySqlConnection connection, TableName shadow, bool? requested, int watchedReplicas,
        string keep, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (requested is { } given)
        {
            return (given, null);
        }

        if (watchedReplicas == 0)
        {
            return (true, null);
        }

        await using (var twoPhase = new MySqlCommand("SHOW GLOBAL VARIABLES LIKE 'binlog_alter_two_phase'", connection))
        await using (MySqlDataReader reader = await twoPhase.ExecuteReaderAsync(cancellationToken))
        {
            if (await reader.ReadAsync(cancellationToken) && reader.GetString(1) == "ON")
            {
                return (true, null);
            }
        }

        List<(string Name, string Definition)> plain = PlainIndexes(await ShowCreateAsync(connection, shadow, cancellationToken), keep);
        return (false, plain.Count == 0 ? null :
            $"The secondary indexes ({string.Join(", ", plain.Select(p => p.Name))}) were filled during the copy rather than built after it: built after it, as one ALTER, "
            + $"{(watchedReplicas == 1 ? "the replica" : $"the {watchedReplicas} replicas")} would run it as one statement once the primary had finished, and fall behind by as long as it takes. "
            + "Building after the copy costs the server less; --defer-indexes on does it anyway, or set binlog_alter_two_phase = ON (MariaDB 10.8+) so replicas build alongside.");
    }

    /// <summary>Saves, then drops, the shadow's plain secondary indexes and the unique keys named; returns the names dropped.</summary>
    /// <param name="keep">An index of osc's own that the replay needs during the copy (ShadowNames.ReplayKey): never deferred.</param>
    /// <param name="unique">
    /// Unique keys to build after the copy too: those the original already enforces and two rows of different keys can
    /// collide on (UniqueKeys.BuildableAfterCopy). In the shadow during the copy, a value that moves between rows could
    /// meet its older version there and make a chunk skip the row that takes it.
    /// </param>
    public static async Task<IReadOnlyList<string>> DeferAsync(MySqlConnection connection, TableName shadow, TableName log, string keep, IReadOnlyCollection<string> unique,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(unique);
        string createTable = await ShowCreateAsync(connection, shadow, cancellationToken);
        List<(string Name, string Definition)> plain = [.. PlainIndexes(createTable, keep),
            .. UniqueIndexes(createTable).Where(u => unique.Contains(u.Name, StringComparer.OrdinalIgnoreCase))];
        if (plain.Count == 0)
        {
            return [];
        }

        await using (var save = new MySqlCommand(
            $"INSERT INTO {MySqlSql.Quote(log)} (id, ts, value) VALUES ({RowId}, NOW(6), @v) ON DUPLICATE KEY UPDATE ts = NOW(6), value = @v", connection))
        {
            save.Parameters.AddWithValue("@v", JsonSerializer.Serialize(plain.Select(p => p.Definition).ToArray()));
            await save.ExecuteNonQueryAsync(cancellationToken);
        }

        var dropped = new List<string>();
        foreach ((string name, _) in plain)
        {
            try
            {
                // The shadow is still empty: dropping is instant.
                await ExecuteAsync(connection, $"ALTER TABLE {MySqlSql.Quote(shadow)} DROP INDEX {MySqlSql.Quote(name)}", cancellationToken);
                dropped.Add(name);
            }
            catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.DropIndexForeignKey)
            {
                // A foreign key needs it: it stays and is filled by the copy.
            }
        }

        return dropped;
    }

    /// <summary>
    /// Adds every saved index the shadow lacks, in one online ALTER (the replay goes on writing meanwhile); calls
    /// <paramref name="starting"/> first when there is any. With a unique key among them, waits for
    /// <paramref name="catchUp"/> first: until the replay has passed every chunk's read, a row the copy brought can share a
    /// unique value with another row's older version, which the build would take for a duplicate.
    /// </summary>
    public static async Task<IReadOnlyList<string>> BuildAsync(MySqlConnection connection, TableName shadow, TableName log, TimeSpan lockWait, Action starting,
        Func<CancellationToken, Task> catchUp, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(catchUp);
        ArgumentNullException.ThrowIfNull(connection);
        string? saved;
        await using (var read = new MySqlCommand($"SELECT value FROM {MySqlSql.Quote(log)} WHERE id = {RowId}", connection))
        {
            saved = await read.ExecuteScalarAsync(cancellationToken) as string;
        }

        if (saved is null)
        {
            return [];
        }

        string createTable = await ShowCreateAsync(connection, shadow, cancellationToken);
        var present = PlainIndexes(createTable).Concat(UniqueIndexes(createTable)).Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var missing = (JsonSerializer.Deserialize<string[]>(saved) ?? [])
            .Select(d => (Name: NameOf(d) ?? UniqueNameOf(d), Definition: d)).Where(d => d.Name is not null && !present.Contains(d.Name)).ToList();
        if (missing.Count == 0)
        {
            return [];
        }

        starting?.Invoke();
        if (missing.Any(m => UniqueNameOf(m.Definition) is not null))
        {
            await catchUp(cancellationToken);
        }

        await ExecuteAsync(connection, $"SET SESSION lock_wait_timeout = {Math.Max(1, (int)Math.Ceiling(lockWait.TotalSeconds)).ToString(CultureInfo.InvariantCulture)}", cancellationToken);
        await ExecuteAsync(connection,
            $"ALTER TABLE {MySqlSql.Quote(shadow)} {string.Join(", ", missing.Select(m => "ADD " + m.Definition))}, ALGORITHM=INPLACE, LOCK=NONE",
            cancellationToken, timeoutSeconds: 0);
        return missing.Select(m => m.Name!).ToList();
    }

    /// <summary>The "KEY `name` (...)" lines of a CREATE TABLE statement: non-unique, neither full-text nor spatial.</summary>
    internal static List<(string Name, string Definition)> PlainIndexes(string createTable, string? keep = null) =>
        createTable.Split('\n')
            .Select(line => line.Trim().TrimEnd(','))
            .Select(line => (Name: NameOf(line), Definition: line))
            .Where(p => p.Name is not null && !p.Name.Equals(keep, StringComparison.OrdinalIgnoreCase))
            .Select(p => (p.Name!, p.Definition))
            .ToList();

    /// <summary>The "UNIQUE KEY `name` (...)" lines of a CREATE TABLE statement.</summary>
    internal static List<(string Name, string Definition)> UniqueIndexes(string createTable) =>
        createTable.Split('\n')
            .Select(line => line.Trim().TrimEnd(','))
            .Select(line => (Name: UniqueNameOf(line), Definition: line))
            .Where(p => p.Name is not null)
            .Select(p => (p.Name!, p.Definition))
            .ToList();

    private static string? NameOf(string definition)
    {
        Match match = PlainKey().Match(definition);
        return match.Success ? match.Groups[1].Value.Replace("``", "`", StringComparison.Ordinal) : null;
    }

    private static string? UniqueNameOf(string definition)
    {
        Match match = UniqueKey().Match(definition);
        return match.Success ? match.Groups[1].Value.Replace("``", "`", StringComparison.Ordinal) : null;
    }

    private static async Task<string> ShowCreateAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand($"SHOW CREATE TABLE {MySqlSql.Quote(table)}", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return reader.GetString(1);
    }

    private static async Task ExecuteAsync(MySqlConnection connection, string sql, CancellationToken cancellationToken, int timeoutSeconds = 30)
    {
        await using var command = new MySqlCommand(sql, connection) { CommandTimeout = timeoutSeconds };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [GeneratedRegex("^KEY `((?:[^`]|``)+)` \\(")]
    private static partial Regex PlainKey();

    [GeneratedRegex("^UNIQUE KEY `((?:[^`]|``)+)` \\(")]
    private static partial Regex UniqueKey();
}
