using System.Text.Json;
using System.Text.RegularExpressions;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>One foreign key as InnoDB holds it: the referencing table and columns, the referenced ones, the rules.</summary>
public sealed record MySqlForeignKey(
    string Name,
    TableName Table,
    IReadOnlyList<string> Columns,
    TableName Referenced,
    IReadOnlyList<string> ReferencedColumns,
    string OnDelete,
    string OnUpdate)
{
    /// <summary>
    /// A rule that makes InnoDB change this table's rows inside the parent's statement. Those changes are not written
    /// to the binlog as row events of this table (MariaDB 10.11, MySQL 8), so a replay would never see them.
    /// </summary>
    public bool Cascades => !IsPassive(OnDelete) || !IsPassive(OnUpdate);

    /// <summary>The name the constraint takes when it is created again (names are unique per schema).</summary>
    public string RebuiltName => MySqlForeignKeys.RebuiltName(Name);

    public override string ToString() =>
        $"{Table}.{Name} ({string.Join(", ", Columns)}) -> {Referenced} ({string.Join(", ", ReferencedColumns)})"
        + (IsPassive(OnDelete) ? "" : $" ON DELETE {OnDelete}") + (IsPassive(OnUpdate) ? "" : $" ON UPDATE {OnUpdate}");

    /// <summary>The constraint's definition under another name (none: the server names it), for other columns or another referenced table.</summary>
    public string Definition(string? name, IReadOnlyList<string> columns, TableName referenced, IReadOnlyList<string> referencedColumns) =>
        (name is null ? "" : $"CONSTRAINT {MySqlSql.Quote(name)} ") + $"FOREIGN KEY ({string.Join(", ", columns.Select(MySqlSql.Quote))}) "
        + $"REFERENCES {MySqlSql.Quote(referenced)} ({string.Join(", ", referencedColumns.Select(MySqlSql.Quote))})"
        + Rule("DELETE", OnDelete) + Rule("UPDATE", OnUpdate);

    // RESTRICT is the default, and InnoDB stores an explicit RESTRICT as NO ACTION: leaving it out keeps the definition as it was.
    private static string Rule(string action, string rule) => rule == "RESTRICT" ? "" : $" ON {action} {rule}";

    private static bool IsPassive(string rule) => rule is "RESTRICT" or "NO ACTION";
}

/// <summary>
/// The foreign keys to and from a table and what `--foreign-keys rebuild` does with them (docs/operations.md):
/// the table's own keys (it is the child; a key to itself included) are added to the shadow under their rebuilt
/// names inside the swap's lock, and dropped from the original just before its RENAME; the keys of other tables that reference it
/// (it is the parent) are rebuilt right after the swap to reference the new table. Every statement is
/// ALGORITHM=INPLACE with foreign_key_checks=0, which InnoDB runs as a change to its dictionary, without reading rows.
/// </summary>
public sealed partial class MySqlForeignKeys
{
    private readonly HashSet<string> _takenNames;

    public MySqlForeignKeys(TableName table, IReadOnlyList<MySqlForeignKey> keys, IEnumerable<string> takenNames)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(keys);
        Table = table;
        Own = keys.Where(k => Same(k.Table, table)).ToList();
        Referencing = keys.Where(k => Same(k.Referenced, table) && !Same(k.Table, table)).ToList();
        _takenNames = new HashSet<string>(takenNames, StringComparer.OrdinalIgnoreCase);
    }

    public TableName Table { get; }

    /// <summary>The table's own foreign keys: it references a parent (or itself).</summary>
    public IReadOnlyList<MySqlForeignKey> Own { get; }

    /// <summary>Other tables' foreign keys that reference the table.</summary>
    public IReadOnlyList<MySqlForeignKey> Referencing { get; }

    public bool Any => Own.Count > 0 || Referencing.Count > 0;

    public static MySqlForeignKeys None(TableName table) => new(table, [], []);

    /// <summary>
    /// A leading underscore added, or removed when there is one, so that two migrations in a row give back the
    /// original name; cut to MySQL's 64 characters.
    /// </summary>
    public static string RebuiltName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Length > 1 && name[0] == '_')
        {
            return name[1..];
        }

        string added = "_" + name;
        return added.Length > MySqlInspector.MaxIdentifierLength ? added[..MySqlInspector.MaxIdentifierLength] : added;
    }

    /// <summary>Refuses what the method cannot migrate soundly, before anything is created.</summary>
    public void Check(ForeignKeyMethod method, AlterStatement statement)
    {
        ArgumentNullException.ThrowIfNull(statement);
        if (!Any)
        {
            return;
        }

        string all = string.Join("; ", Own.Concat(Referencing));
        if (method == ForeignKeyMethod.Refuse)
        {
            throw new OscException($"{Table} has foreign keys ({all}); a swapped table would leave them pointing at the old one, or lose them.",
                "Add --foreign-keys rebuild to carry them over (what it does and what it costs: docs/operations.md; the dry run lists each statement), "
                + "or drop the foreign keys for the migration and add them back afterwards.");
        }

        AlterClause? foreignKeyClause = statement.Clauses.FirstOrDefault(c => ForeignKeyClause().IsMatch(c.Text));
        if (foreignKeyClause is not null)
        {
            throw new OscException($"The ALTER changes foreign keys ({foreignKeyClause.Text.Trim()}), while --foreign-keys rebuild carries {Table}'s existing ones over.",
                "Change the foreign keys natively, in a statement of their own: DROP FOREIGN KEY is metadata-only, and so is ADD FOREIGN KEY after "
                + "SET foreign_key_checks = 0 (which skips validating existing rows); then migrate the rest.");
        }

        MySqlForeignKey? cascading = Own.FirstOrDefault(k => k.Cascades);
        if (cascading is not null)
        {
            throw new OscException($"{cascading} changes {Table}'s rows when its parent changes; InnoDB does that inside the parent's statement "
                + "and does not write those changes to the binlog as rows of the child, so the replay would miss them.",
                "Change the table natively, or make the constraint ON DELETE/UPDATE RESTRICT for the migration (drop and add it with "
                + "SET foreign_key_checks = 0: metadata-only) and restore it afterwards.");
        }

        var planned = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (MySqlForeignKey key in Own.Concat(Referencing))
        {
            string name = $"{key.Table.Schema}.{key.RebuiltName}";
            if (_takenNames.Contains(name) || !planned.Add(name))
            {
                throw new OscException($"{key} would be recreated as {key.RebuiltName}, a name another foreign key of {key.Table.Schema} already has (names are unique per schema).",
                    $"Rename one of them first (drop and add with SET foreign_key_checks = 0: metadata-only).");
            }
        }
    }

    /// <summary>The ALTER that gives the shadow the table's own keys under their rebuilt names; null when there are none.</summary>
    public string? AddToShadow(TableName shadow, ColumnMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(shadow);
        if (Own.Count == 0)
        {
            return null;
        }

        // A key to the table itself references the shadow, which the swap renames to the table.
        IEnumerable<string> clauses = Own.Select(k => "ADD " + k.Definition(k.RebuiltName, Map(k, k.Columns, mapping),
            Same(k.Referenced, Table) ? shadow : k.Referenced, Same(k.Referenced, Table) ? Map(k, k.ReferencedColumns, mapping) : k.ReferencedColumns));
        return $"ALTER TABLE {MySqlSql.Quote(shadow)} {string.Join(", ", clauses)}, ALGORITHM=INPLACE, LOCK=NONE";
    }

    /// <summary>The ALTER that drops the table's own keys from the original inside the swap's lock; null when there are none.</summary>
    public string? DropFromOriginal() => Own.Count == 0 ? null
        : $"ALTER TABLE {MySqlSql.Quote(Table)} {string.Join(", ", Own.Select(k => "DROP FOREIGN KEY " + MySqlSql.Quote(k.Name)))}, ALGORITHM=INPLACE, LOCK=NONE";

    /// <summary>The ALTER that gives the original its own keys back, as they were; null when there are none.</summary>
    public string? RestoreOriginal() => Own.Count == 0 ? null
        : $"ALTER TABLE {MySqlSql.Quote(Table)} {string.Join(", ", Own.Select(k => "ADD " + k.Definition(k.Name, k.Columns, k.Referenced, k.ReferencedColumns)))}, ALGORITHM=INPLACE, LOCK=NONE";

    /// <summary>What the swap does with the table's own keys; null when it has none.</summary>
    public MySqlCutoverForeignKeys? ForCutover(TableName shadow, ColumnMapping mapping) => Own.Count == 0 ? null
        : new MySqlCutoverForeignKeys(AddToShadow(shadow, mapping)!, DropFromOriginal()!, RestoreOriginal()!);

    /// <summary>
    /// Records, in the bookkeeping table, how to give the original its own keys back: the swap drops them from it
    /// just before the RENAME, and a run killed in those milliseconds leaves it without them until a resume or
    /// `osc cleanup` restores them (<see cref="RestoreIfLostAsync"/>).
    /// </summary>
    public async Task RecordRestoreAsync(MySqlConnection connection, TableName log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(log);
        if (Own.Count == 0)
        {
            return;
        }

        await using var command = new MySqlCommand(
            $"INSERT INTO {MySqlSql.Quote(log)} (id, ts, value) VALUES ({RestoreRow}, NOW(6), @v) ON DUPLICATE KEY UPDATE ts = NOW(6), value = @v", connection);
        command.Parameters.AddWithValue("@v", JsonSerializer.Serialize(new RestoreRecord(Own.Select(k => k.Name).ToList(), RestoreOriginal()!)));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Gives the original back the keys a killed swap dropped from it (none of the recorded names on the table), with
    /// foreign_key_checks=0; returns what was done, or null when nothing was missing.
    /// </summary>
    public static async Task<string?> RestoreIfLostAsync(MySqlConnection connection, TableName table, TableName log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(log);
        // Only a bookkeeping table of ours has the value column; a table that merely has the name is left alone.
        await using (var exists = new MySqlCommand(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t AND COLUMN_NAME = 'value'", connection))
        {
            exists.Parameters.AddWithValue("@s", log.Schema);
            exists.Parameters.AddWithValue("@t", log.Name);
            if (Convert.ToInt64(await exists.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture) == 0)
            {
                return null;
            }
        }

        RestoreRecord? record;
        await using (var read = new MySqlCommand($"SELECT value FROM {MySqlSql.Quote(log)} WHERE id = {RestoreRow}", connection))
        {
            record = await read.ExecuteScalarAsync(cancellationToken) is string json ? JsonSerializer.Deserialize<RestoreRecord>(json) : null;
        }

        if (record is null)
        {
            return null;
        }

        IReadOnlyList<MySqlForeignKey> present = await ReadKeysAsync(connection, "rc.CONSTRAINT_SCHEMA = @s AND rc.TABLE_NAME = @t", table, cancellationToken);
        if (present.Any(k => record.Names.Contains(k.Name, StringComparer.OrdinalIgnoreCase)))
        {
            return null;
        }

        await using (var restore = new MySqlCommand($"SET SESSION foreign_key_checks = 0; {record.Sql}; SET SESSION foreign_key_checks = 1", connection))
        {
            await restore.ExecuteNonQueryAsync(cancellationToken);
        }

        return $"{table}: foreign keys {string.Join(", ", record.Names)} restored (a swap was killed after dropping them; rows written since were not checked against them)";
    }

    /// <summary>
    /// Before a resume inspects the table: the keys a killed swap took from the original go back to it, and those it
    /// had added to the shadow are dropped (their names would collide with the ones the swap will add again).
    /// </summary>
    public static async Task RecoverKilledSwapAsync(MySqlConnection connection, TableName table, ShadowNames names, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(names);
        await RestoreIfLostAsync(connection, table, table with { Name = names.Log }, cancellationToken);
        await DropAllAsync(connection, table with { Name = names.Shadow }, cancellationToken);
    }

    private const int RestoreRow = 4;

    private sealed record RestoreRecord(IReadOnlyList<string> Names, string Sql);

    /// <summary>One ALTER per referencing table: its keys to the old table dropped, the same keys to the new table added.</summary>
    public IReadOnlyList<(TableName Child, string Sql)> RebuildReferencing(ColumnMapping mapping) =>
        Referencing.GroupBy(k => k.Table.ToString(), StringComparer.OrdinalIgnoreCase)
            .Select(g => (g.First().Table,
                $"ALTER TABLE {MySqlSql.Quote(g.First().Table)} "
                + string.Join(", ", g.Select(k => $"DROP FOREIGN KEY {MySqlSql.Quote(k.Name)}, ADD "
                                                   + k.Definition(k.RebuiltName, k.Columns, Table, Map(k, k.ReferencedColumns, mapping))))
                + ", ALGORITHM=INPLACE, LOCK=NONE"))
            .ToList();

    /// <summary>
    /// The first constraint the shadow has no index for: one starting with the key's columns for the table's own keys
    /// (InnoDB would build one inside the swap's lock), with the referenced columns for keys that reference the table
    /// (InnoDB refuses the key). Null when every key has its index.
    /// </summary>
    public string? MissingIndex(ColumnMapping mapping, IReadOnlyList<IReadOnlyList<string>> shadowIndexes)
    {
        ArgumentNullException.ThrowIfNull(shadowIndexes);
        bool Indexed(IReadOnlyList<string> columns) => shadowIndexes.Any(index =>
            index.Count >= columns.Count && columns.Select((c, i) => index[i].Equals(c, StringComparison.OrdinalIgnoreCase)).All(x => x));
        foreach (MySqlForeignKey key in Own.Concat(Referencing))
        {
            if (Same(key.Table, Table) && !Indexed(Map(key, key.Columns, mapping)))
            {
                return $"The ALTER leaves no index starting with ({string.Join(", ", Map(key, key.Columns, mapping))}) for the foreign key {key}; "
                       + "recreating the key would build one while the swap holds writes.";
            }

            if (Same(key.Referenced, Table) && !Indexed(Map(key, key.ReferencedColumns, mapping)))
            {
                return $"The ALTER leaves no index starting with ({string.Join(", ", Map(key, key.ReferencedColumns, mapping))}), which the foreign key {key} references.";
            }
        }

        return null;
    }

    /// <summary>
    /// For a dry run of the referencing side: the same keys added from <paramref name="copy"/>, an empty copy of the
    /// referencing table, to the shadow, so the server says whether they fit the new definition.
    /// </summary>
    public string RehearseReferencing(TableName child, TableName copy, TableName shadow, ColumnMapping mapping) =>
        $"ALTER TABLE {MySqlSql.Quote(copy)} "
        + string.Join(", ", Referencing.Where(k => Same(k.Table, child)).Select(k => "ADD " + k.Definition(null, k.Columns, shadow, Map(k, k.ReferencedColumns, mapping))));

    /// <summary>What the migration will do to each constraint, for the dry run.</summary>
    public IReadOnlyList<ForeignKeyAction> Actions(ShadowNames names, ColumnMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(names);
        var actions = Own.Select(k => new ForeignKeyAction(k, "own",
            $"inside the swap's lock, once the shadow equals {Table.Name}: added to {names.Shadow} as {k.RebuiltName}, then dropped from {Table.Name} "
            + $"(which becomes {names.Old}) just before the RENAME; metadata only, both",
            ["SET SESSION foreign_key_checks = 0", AddToShadow(Table with { Name = names.Shadow }, mapping)!, DropFromOriginal()!])).ToList();
        Dictionary<string, string> rebuilt = RebuildReferencing(mapping).ToDictionary(r => r.Child.ToString(), r => r.Sql, StringComparer.OrdinalIgnoreCase);
        actions.AddRange(Referencing.Select(k => new ForeignKeyAction(k, "referencing",
            $"rebuilt as {k.RebuiltName} to reference the new {Table.Name} right after the swap (it follows the rename to {names.Old} until then); "
            + $"metadata only, but waits for open transactions on {k.Table}",
            ["SET SESSION foreign_key_checks = 0", rebuilt[k.Table.ToString()]])));
        return actions;
    }

    /// <summary>
    /// Right after the swap, each referencing table's keys are moved from the old table to the new one. Each ALTER is
    /// metadata-only but needs its table's metadata lock, so it waits at most the cut-over lock
    /// timeout for open transactions and is retried up to the cut-over attempts. What still failed is reported with
    /// the statements to run; the swap itself stands.
    /// </summary>
    public async Task AfterSwapAsync(string connectionString, ShadowNames names, ColumnMapping mapping, CutoverOptions options)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(options);
        var old = Table with { Name = names.Old };
        var work = RebuildReferencing(mapping).Select(r => (What: $"{r.Child} still references {old}", r.Sql)).ToList();
        if (work.Count == 0)
        {
            return;
        }

        // Not cancellable: the swap has happened, and stopping half-way would leave more to do by hand.
        CancellationToken none = CancellationToken.None;
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(none);
        int lockSeconds = Math.Max(1, (int)Math.Ceiling(options.LockTimeout.TotalSeconds));
        await using (var set = new MySqlCommand($"SET SESSION foreign_key_checks = 0, lock_wait_timeout = {lockSeconds}", connection))
        {
            await set.ExecuteNonQueryAsync(none);
        }

        var failed = new List<(string What, string Sql, string Why)>();
        foreach ((string what, string sql) in work)
        {
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    await using var command = new MySqlCommand(sql, connection) { CommandTimeout = lockSeconds + 60 };
                    await command.ExecuteNonQueryAsync(none);
                    break;
                }
                catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.LockWaitTimeout or MySqlErrorCode.LockDeadlock && attempt < options.Attempts)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 100 * (1 << Math.Min(attempt, 6))) + Random.Shared.Next(100)), none);
                }
                catch (MySqlException e)
                {
                    failed.Add((what, sql, e.Message));
                    break;
                }
            }
        }

        if (failed.Count > 0)
        {
            throw new OscException(
                $"Swapped: {Table} has the new definition, but {string.Join("; ", failed.Select(f => $"{f.What} ({f.Why})"))}.",
                $"Run, when the lock can be had: SET SESSION foreign_key_checks = 0; {string.Join("; ", failed.Select(f => f.Sql))}. "
                + $"Until then {old} is kept (it cannot be dropped while a foreign key references it).");
        }
    }

    /// <summary>Refuses to drop a table that other tables' foreign keys still reference, naming them.</summary>
    public static async Task EnsureUnreferencedAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        IReadOnlyList<MySqlForeignKey> still = await ReferencingAsync(connection, table, cancellationToken);
        if (still.Count > 0)
        {
            throw new OscException($"{table} is not dropped: foreign keys still reference it ({string.Join("; ", still)}).",
                $"Point them at the new table first (ALTER TABLE <child> DROP FOREIGN KEY ..., ADD CONSTRAINT ... REFERENCES {table.Schema}.<new table> ..., "
                + "with SET foreign_key_checks = 0: metadata-only), then drop it.");
        }
    }

    /// <summary>Every foreign key from or to the table, with the names already taken in the schemas where keys will be created.</summary>
    public static async Task<MySqlForeignKeys> ReadAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        IReadOnlyList<MySqlForeignKey> keys = await ReadKeysAsync(connection,
            "(rc.CONSTRAINT_SCHEMA = @s AND rc.TABLE_NAME = @t) OR (k.REFERENCED_TABLE_SCHEMA = @s AND rc.REFERENCED_TABLE_NAME = @t)", table, cancellationToken);
        var taken = new List<string>();
        foreach (string schema in keys.Select(k => k.Table.Schema!).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            await using var command = new MySqlCommand("SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = @s", connection);
            command.Parameters.AddWithValue("@s", schema);
            await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                taken.Add($"{schema}.{reader.GetString(0)}");
            }
        }

        return new MySqlForeignKeys(table, keys, taken);
    }

    /// <summary>Foreign keys of other tables that reference this one (the old table must not be dropped while there are any).</summary>
    public static async Task<IReadOnlyList<MySqlForeignKey>> ReferencingAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        IReadOnlyList<MySqlForeignKey> keys = await ReadKeysAsync(connection, "k.REFERENCED_TABLE_SCHEMA = @s AND rc.REFERENCED_TABLE_NAME = @t", table, cancellationToken);
        return keys.Where(k => !Same(k.Table, table)).ToList();
    }

    /// <summary>
    /// Drops every foreign key the table has. For the shadow: a cut-over that failed, or was killed, after adding the
    /// keys must not leave them there, where the shadow's stale rows would refuse the application's parent deletes.
    /// </summary>
    public static async Task DropAllAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        IReadOnlyList<MySqlForeignKey> keys = await ReadKeysAsync(connection, "rc.CONSTRAINT_SCHEMA = @s AND rc.TABLE_NAME = @t", table, cancellationToken);
        if (keys.Count > 0)
        {
            await using var command = new MySqlCommand(
                $"ALTER TABLE {MySqlSql.Quote(table)} {string.Join(", ", keys.Select(k => "DROP FOREIGN KEY " + MySqlSql.Quote(k.Name)))}", connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    private static async Task<IReadOnlyList<MySqlForeignKey>> ReadKeysAsync(MySqlConnection connection, string where, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(
            $"""
            SELECT rc.CONSTRAINT_SCHEMA, rc.CONSTRAINT_NAME, rc.TABLE_NAME, k.REFERENCED_TABLE_SCHEMA, rc.REFERENCED_TABLE_NAME,
                   rc.DELETE_RULE, rc.UPDATE_RULE, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME
            FROM information_schema.REFERENTIAL_CONSTRAINTS rc
            JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME
                 AND k.TABLE_NAME = rc.TABLE_NAME AND k.REFERENCED_TABLE_NAME IS NOT NULL
            WHERE {where}
            ORDER BY rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION
            """, connection);
        command.Parameters.AddWithValue("@s", table.Schema);
        command.Parameters.AddWithValue("@t", table.Name);
        var rows = new List<(string Schema, string Name, string Table, string RefSchema, string RefTable, string OnDelete, string OnUpdate, string Column, string RefColumn)>();
        await using (MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                    reader.GetString(5), reader.GetString(6), reader.GetString(7), reader.GetString(8)));
            }
        }

        return rows.GroupBy(r => (r.Schema, r.Table, r.Name))
            .Select(g => new MySqlForeignKey(g.Key.Name, new TableName(g.Key.Schema, g.Key.Table), g.Select(r => r.Column).ToList(),
                new TableName(g.First().RefSchema, g.First().RefTable), g.Select(r => r.RefColumn).ToList(), g.First().OnDelete, g.First().OnUpdate))
            .ToList();
    }

    /// <summary>The columns' names in the shadow; a column the ALTER drops makes the key impossible to carry over.</summary>
    private static List<string> Map(MySqlForeignKey key, IReadOnlyList<string> columns, ColumnMapping mapping) =>
        columns.Select(c => mapping.Pairs.FirstOrDefault(p => p.Source.Equals(c, StringComparison.OrdinalIgnoreCase)).Target
                            ?? throw new OscException($"The ALTER drops column {c}, which the foreign key {key} needs.",
                                "Drop the foreign key natively first (DROP FOREIGN KEY is metadata-only), then migrate.")).ToList();

    private static bool Same(TableName a, TableName b) =>
        string.Equals(a.Schema, b.Schema, StringComparison.Ordinal) && string.Equals(a.Name, b.Name, StringComparison.Ordinal);

    [GeneratedRegex(@"\bFOREIGN\s+KEY\b|\bREFERENCES\b", RegexOptions.IgnoreCase)]
    private static partial Regex ForeignKeyClause();
}

/// <summary>The swap's part: keys added to the shadow, dropped from the original, and how to restore them on failure.</summary>
public sealed record MySqlCutoverForeignKeys(string AddToShadow, string DropFromOriginal, string RestoreOriginal);

/// <summary>What a migration will do to one constraint, and the statements it will run for it.</summary>
public sealed record ForeignKeyAction(MySqlForeignKey Key, string Side, string Plan, IReadOnlyList<string> Statements);
