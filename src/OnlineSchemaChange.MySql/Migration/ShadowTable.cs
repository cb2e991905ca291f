using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>
/// The shadow table, created with CREATE TABLE ... LIKE and the operator's ALTER (so the server validates the
/// statement against the real definition), with how rows of the original map onto it. Creation refuses, and drops
/// the shadow again, when the ALTER drops a column of the matching key or adds a NOT NULL column without a default.
/// The shadow never has foreign keys while rows are copied and replayed: its rows lag the original's, and a key on it
/// would refuse the application's delete of a parent row whose children are already gone from the original. The
/// keys carried over with --foreign-keys rebuild are rehearsed here on the empty shadow and added at the swap.
/// </summary>
public sealed record ShadowTable(
    TableName Table,
    IReadOnlyList<MySqlColumn> Columns,
    ColumnMapping Mapping,
    IReadOnlyList<string> KeyInShadow,
    IReadOnlyList<string> DroppedColumns,
    IReadOnlyList<string> AddedColumns)
{
    public IReadOnlyDictionary<string, string> ColumnTypes => Columns.ToDictionary(c => c.Name, c => c.ColumnType, StringComparer.OrdinalIgnoreCase);

    public static async Task<ShadowTable> CreateAsync(MySqlConnection connection, MySqlTableFacts facts, AlterStatement statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(statement);
        var table = facts.Table with { Name = facts.Names.Shadow };
        var catalog = new MySqlCatalog(connection);
        await catalog.ExecuteAsync("SET SESSION lock_wait_timeout = 10", cancellationToken);
        await catalog.ExecuteAsync($"CREATE TABLE {MySqlSql.Quote(table)} LIKE {MySqlSql.Quote(facts.Table)}", cancellationToken);
        var created = new ShadowTable(table, [], ColumnMapping.Build([], [], new Dictionary<string, string>()), [], [], []);
        try
        {
            try
            {
                await catalog.ExecuteAsync(statement.RenderFor(MySqlSql.Quote(table)), cancellationToken);
            }
            catch (MySqlException e)
            {
                throw new OscException($"The server rejects the ALTER: {e.Message} (error {(int)e.ErrorCode})",
                    "Fix the statement; it was tried only on the (now removed) shadow table, the table is untouched.", e);
            }

            // The copy's and the replay's transactions, and verification's consistent snapshots, need InnoDB on
            // both sides; another engine would take the writes without them.
            string engine = await catalog.EngineAsync(table, cancellationToken) ?? "";
            if (!engine.Equals("InnoDB", StringComparison.OrdinalIgnoreCase))
            {
                throw new OscException($"The ALTER changes the engine of {facts.Table} to {engine}; an online rebuild writes the new table in transactions and reads it in consistent snapshots, which need InnoDB.",
                    "Change the engine natively (it rebuilds the table under a lock), or keep ENGINE=InnoDB.");
            }

            ShadowTable shadow = await DescribeAsync(catalog, table, facts, statement, cancellationToken);
            await RehearseForeignKeysAsync(connection, facts, shadow, cancellationToken);
            await EnsureReplayKeyAsync(connection, shadow, facts.Names.ReplayKey, cancellationToken);
            return shadow;
        }
        catch (Exception e)
        {
            try
            {
                await created.DropAsync(connection);
            }
            catch (Exception dropFailed) when (dropFailed is MySqlException or OperationCanceledException)
            {
                // The reason the shadow could not be made matters more than the failed drop; the leftover is named.
                throw new OscException(
                    $"{e.Message} The shadow {table} could not be removed afterwards: {dropFailed.Message}",
                    $"{(e as OscException)?.Hint} Remove the shadow with `osc cleanup <connection> --table {facts.Table}`.".TrimStart(), e);
            }

            throw;
        }
    }

    /// <summary>
    /// The shadow an interrupted run left (for --resume): described from the server as it is, with the same refusals
    /// as at creation, and never dropped here; it holds the copied rows.
    /// </summary>
    public static async Task<ShadowTable> OpenAsync(MySqlConnection connection, MySqlTableFacts facts, AlterStatement statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(statement);
        var table = facts.Table with { Name = facts.Names.Shadow };

        // A cut-over killed after giving the shadow its foreign keys, and before the swap, left them there.
        await MySqlForeignKeys.DropAllAsync(connection, table, cancellationToken);
        ShadowTable shadow = await DescribeAsync(new MySqlCatalog(connection), table, facts, statement, cancellationToken);
        await EnsureReplayKeyAsync(connection, shadow, facts.Names.ReplayKey, cancellationToken);
        return shadow;
    }

    /// <summary>
    /// Adds the foreign keys that will be carried over to the empty shadow and drops them again, and adds the
    /// referencing tables' keys from an empty copy of each: the server checks every column type and index against the
    /// new definition now, not at the swap.
    /// </summary>
    private static async Task RehearseForeignKeysAsync(MySqlConnection connection, MySqlTableFacts facts, ShadowTable shadow, CancellationToken cancellationToken)
    {
        MySqlForeignKeys keys = facts.ForeignKeys;
        if (!keys.Any)
        {
            return;
        }

        string? missing = keys.MissingIndex(shadow.Mapping, await IndexesAsync(connection, shadow.Table, cancellationToken));
        if (missing is not null)
        {
            throw new OscException(missing, "Keep an index on the foreign key's columns in the ALTER, or drop the foreign key natively first.");
        }

        var catalog = new MySqlCatalog(connection);
        var copy = facts.Table with { Name = facts.Names.ForeignKeyProbe };
        await catalog.ExecuteAsync("SET SESSION foreign_key_checks = 0", cancellationToken);
        try
        {
            if (keys.AddToShadow(shadow.Table, shadow.Mapping) is { } add)
            {
                await RehearseAsync(catalog, add, cancellationToken);
                await MySqlForeignKeys.DropAllAsync(connection, shadow.Table, cancellationToken);
            }

            foreach (TableName child in keys.Referencing.Select(k => k.Table).DistinctBy(t => t.ToString()))
            {
                await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(copy)}", cancellationToken);
                await catalog.ExecuteAsync($"CREATE TABLE {MySqlSql.Quote(copy)} LIKE {MySqlSql.Quote(child)}", cancellationToken);
                await RehearseAsync(catalog, keys.RehearseReferencing(child, copy, shadow.Table, shadow.Mapping), cancellationToken);
            }
        }
        finally
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(copy)}", timeout.Token);
            await catalog.ExecuteAsync("SET SESSION foreign_key_checks = 1", timeout.Token);
        }
    }

    private static async Task RehearseAsync(MySqlCatalog catalog, string sql, CancellationToken cancellationToken)
    {
        try
        {
            await catalog.ExecuteAsync(sql, cancellationToken);
        }
        catch (MySqlException e)
        {
            throw new OscException($"The foreign keys cannot be carried over to the new definition: {e.Message} (error {(int)e.ErrorCode}; tried on an empty copy: {sql})",
                "Keep both sides of each foreign key compatible (integers of the same size and sign, strings of the same character set and collation), or drop the key natively first.", e);
        }
    }

    /// <summary>
    /// Without verification, refuses a shadow with a unique key the original does not enforce on the same values, or
    /// with any unique key that two rows of different keys can collide on: the copy would skip a row colliding on it
    /// without a word (<see cref="UniqueKeys"/>).
    /// </summary>
    public async Task RefuseUnverifiedUniqueKeyAsync(MySqlConnection connection, TableName original, bool verify, CancellationToken cancellationToken)
    {
        if (verify)
        {
            return;
        }

        IReadOnlyList<UniqueKey> shadowKeys = await UniqueKeysAsync(connection, Table, cancellationToken);
        // A functional key part (MySQL 8) has no column to compare: such a key counts as new.
        UniqueKey? added = shadowKeys.FirstOrDefault(k => k.Columns.Any(c => c is null))
                           ?? UniqueKeys.FirstNew(await UniqueKeysAsync(connection, original, cancellationToken), shadowKeys, Mapping, StringComparer.OrdinalIgnoreCase);
        if (added is not null)
        {
            throw UniqueKeys.Unverified(added);
        }

        if (UniqueKeys.FirstBesideKey(shadowKeys, KeyInShadow, StringComparer.OrdinalIgnoreCase) is { } beside)
        {
            throw UniqueKeys.UnverifiedBesideKey(beside);
        }
    }

    /// <summary>
    /// The shadow's unique keys that can be built after the copy (UniqueKeys.BuildableAfterCopy): the original already
    /// enforces them, and two rows of different keys can collide on them. Never the primary key.
    /// </summary>
    public async Task<IReadOnlyList<string>> UniqueKeysBuildableAfterCopyAsync(MySqlConnection connection, TableName original, CancellationToken cancellationToken)
    {
        IReadOnlyList<UniqueKey> shadowKeys = (await UniqueKeysAsync(connection, Table, cancellationToken))
            .Where(k => k.Columns.All(c => c is not null) && !k.Name.Equals("PRIMARY", StringComparison.OrdinalIgnoreCase)).ToList();
        return UniqueKeys.BuildableAfterCopy(await UniqueKeysAsync(connection, original, cancellationToken), shadowKeys, Mapping, KeyInShadow, StringComparer.OrdinalIgnoreCase)
            .Select(k => k.Name).ToList();
    }

    /// <summary>
    /// The replay deletes and verification reads the shadow by the original's key; an ALTER whose new primary key does
    /// not start with those columns leaves no index to find them by, and each batch would scan the shadow. A plain
    /// index over them is added then (not a unique one: on a shadow left without a primary key, InnoDB would cluster
    /// on it, and dropping it would rebuild the table). The deferred build leaves it alone; the swap drops it under
    /// its lock, before the RENAME. Also called when a run resumes, for a shadow a failed swap left without it.
    /// </summary>
    internal static async Task EnsureReplayKeyAsync(MySqlConnection connection, ShadowTable shadow, string index, CancellationToken cancellationToken)
    {
        // Only the unique keys count: the plain indexes are dropped for the copy (MySqlDeferredIndexes), ours is kept.
        var key = shadow.KeyInShadow.ToHashSet(StringComparer.OrdinalIgnoreCase);
        IReadOnlyList<UniqueKey> unique = await UniqueKeysAsync(connection, shadow.Table, cancellationToken);
        if (unique.Any(k => k.Columns.Count >= key.Count && k.Columns.Take(key.Count).All(c => c is not null && key.Contains(c))))
        {
            return;
        }

        await using (var exists = new MySqlCommand("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t AND INDEX_NAME = @i", connection))
        {
            exists.Parameters.AddWithValue("@s", shadow.Table.Schema);
            exists.Parameters.AddWithValue("@t", shadow.Table.Name);
            exists.Parameters.AddWithValue("@i", index);
            if (Convert.ToInt64(await exists.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture) > 0)
            {
                return;
            }
        }

        await new MySqlCatalog(connection).ExecuteAsync(
            $"ALTER TABLE {MySqlSql.Quote(shadow.Table)} ADD KEY {MySqlSql.Quote(index)} ({string.Join(", ", shadow.KeyInShadow.Select(MySqlSql.Quote))})",
            cancellationToken);
    }

    /// <summary>The table's unique keys, each with its columns' types, collations and prefix lengths.</summary>
    private static async Task<IReadOnlyList<UniqueKey>> UniqueKeysAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(
            """
            SELECT s.INDEX_NAME, GROUP_CONCAT(COALESCE(s.COLUMN_NAME, '') ORDER BY s.SEQ_IN_INDEX SEPARATOR '\n'),
                   GROUP_CONCAT(COALESCE(CONCAT_WS(' ', c.COLUMN_TYPE, c.COLLATION_NAME, s.SUB_PART), 'expression') ORDER BY s.SEQ_IN_INDEX SEPARATOR '\n')
            FROM information_schema.STATISTICS s
            LEFT JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME
            WHERE s.TABLE_SCHEMA = @s AND s.TABLE_NAME = @t AND s.NON_UNIQUE = 0
            GROUP BY s.INDEX_NAME
            """, connection);
        command.Parameters.AddWithValue("@s", table.Schema);
        command.Parameters.AddWithValue("@t", table.Name);
        var keys = new List<UniqueKey>();
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(new UniqueKey(reader.GetString(0), reader.GetString(1).Split('\n').Select(c => c.Length == 0 ? null : c).ToList(), reader.GetString(2).Split('\n'), ""));
        }

        return keys;
    }

    /// <summary>Each index of the table as its columns in order.</summary>
    private static async Task<IReadOnlyList<IReadOnlyList<string>>> IndexesAsync(MySqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(
            "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR '\\n') FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t GROUP BY INDEX_NAME",
            connection);
        command.Parameters.AddWithValue("@s", table.Schema);
        command.Parameters.AddWithValue("@t", table.Name);
        var indexes = new List<IReadOnlyList<string>>();
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            indexes.Add(reader.GetString(0).Split('\n'));
        }

        return indexes;
    }

    private static async Task<ShadowTable> DescribeAsync(MySqlCatalog catalog, TableName table, MySqlTableFacts facts, AlterStatement statement, CancellationToken cancellationToken)
    {
        IReadOnlyList<MySqlColumn> columns = await catalog.ColumnsAsync(table, cancellationToken);
        ColumnMapping mapping = ColumnMapping.Build(
            facts.Columns.Select(c => new TableColumn(c.Name, c.Generated)).ToList(),
            columns.Select(c => new TableColumn(c.Name, c.Generated)).ToList(), statement.RenamedColumns);
        var mappedSources = mapping.SourceColumns.ToHashSet(StringComparer.OrdinalIgnoreCase);
        var mappedTargets = mapping.TargetColumns.ToHashSet(StringComparer.OrdinalIgnoreCase);

        string?[] keyInShadow = facts.Key.Select(k => mapping.Pairs.FirstOrDefault(p => p.Source.Equals(k, StringComparison.OrdinalIgnoreCase)).Target).ToArray();
        if (keyInShadow.Any(k => k is null))
        {
            throw new OscException($"The ALTER drops a column of the key {facts.KeyName} ({string.Join(", ", facts.Key)}) that matches changes to rows.",
                "Keep the key's columns, or change the key in a separate migration first.");
        }

        MySqlColumn? unfillable = columns.FirstOrDefault(c => !mappedTargets.Contains(c.Name) && !c.Nullable && !c.HasDefault && !c.Generated);
        if (unfillable is not null)
        {
            throw new OscException($"The ALTER adds {unfillable.Name} as NOT NULL without a default: copied rows would have no value for it.",
                $"Give it a default (ADD COLUMN {unfillable.Name} ... NOT NULL DEFAULT ...), or add it nullable and fill it afterwards.");
        }

        return new ShadowTable(table, columns, mapping, keyInShadow!,
            facts.Columns.Where(c => !c.Generated && !mappedSources.Contains(c.Name)).Select(c => c.Name).ToList(),
            columns.Where(c => !c.Generated && !mappedTargets.Contains(c.Name)).Select(c => c.Name).ToList());
    }

    /// <summary>Drops the shadow; not cancellable, since it must go even when the operator pressed Ctrl-C.</summary>
    public async Task DropAsync(MySqlConnection connection)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await new MySqlCatalog(connection).ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(Table)}", timeout.Token);
    }
}
