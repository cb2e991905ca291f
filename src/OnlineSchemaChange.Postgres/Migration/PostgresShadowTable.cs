using System.Text;
using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// The shadow table: CREATE TABLE ... (LIKE original INCLUDING ALL), then the operator's ALTER applied to it, so the
/// server validates the statement against the real definition. Columns are matched to the original's by attribute
/// number, which survives a rename: renames are exact, a dropped column has no target (even when a new column takes
/// its name), generated columns are never written. Creation refuses, and drops the shadow again, when the ALTER drops a
/// column of the matching key or adds a NOT NULL column that copied rows could not fill.
/// </summary>
public sealed class PostgresShadowTable
{
    private PostgresShadowTable(TableName table, IReadOnlyList<PostgresTableColumn> columns, ColumnMapping mapping, IReadOnlyList<string> keyInShadow,
        IReadOnlyDictionary<string, string> sourceExpressions, IReadOnlyDictionary<string, string> indexNames, IReadOnlyList<(string Name, string Definition)> deferredIndexes,
        IReadOnlyList<int> sourceNumbers, bool autovacuumPaused)
    {
        AutovacuumPaused = autovacuumPaused;
        DeferredIndexes = deferredIndexes;
        SourceNumbers = sourceNumbers;
        Table = table;
        Columns = columns;
        Mapping = mapping;
        KeyInShadow = keyInShadow;
        SourceExpressions = sourceExpressions;
        IndexNames = indexNames;
    }

    public TableName Table { get; }

    /// <summary>The shadow's columns after the ALTER.</summary>
    public IReadOnlyList<PostgresTableColumn> Columns { get; }

    public ColumnMapping Mapping { get; }

    /// <summary>The original's key columns under the names the shadow gives them.</summary>
    public IReadOnlyList<string> KeyInShadow { get; }

    /// <summary>The new type of each shadow column (format_type), which verification compares in.</summary>
    public IReadOnlyDictionary<string, string> ColumnTypes => Columns.ToDictionary(c => c.Name, c => c.Type, StringComparer.Ordinal);

    /// <summary>
    /// Per target column, the SQL over the original's columns that yields its value: the quoted source column, or the
    /// ALTER's USING expression for a retyped column. Assignment casts into the new type happen on INSERT, as they do in
    /// a native ALTER ... TYPE (a value too long for a varchar(n) fails rather than being cut).
    /// </summary>
    public IReadOnlyDictionary<string, string> SourceExpressions { get; }

    /// <summary>
    /// Shadow index name to the original index name it copies (LIKE makes up new names): the cut-over gives the new
    /// table the original's names back.
    /// </summary>
    public IReadOnlyDictionary<string, string> IndexNames { get; }

    /// <summary>
    /// The shadow's plain (non-unique, constraint-free) indexes, removed before the copy and built once it is done: on
    /// 1,000,000 rows that is about 40% faster than maintaining them row by row (docs/architecture.md). So are the
    /// unique keys (and exclusion constraints) the original already enforces and two rows of different keys can
    /// collide on (<see cref="UniqueKeys.BuildableAfterCopy"/>): in the shadow during the copy, a value moving between
    /// rows could meet its older version there and make a chunk skip a row. The key the replay finds rows by stays.
    /// <see cref="BuildDeferredIndexesAsync"/> builds them; the cut-over does so too if they are still missing, so the
    /// new table never goes live without them.
    /// </summary>
    public IReadOnlyList<(string Name, string Definition)> DeferredIndexes { get; }

    /// <summary>
    /// Whether autovacuum is off on the shadow until the swap (autovacuum_enabled = false, set at creation unless the
    /// ALTER sets it). An autovacuum of the freshly filled shadow does nothing the table needs before it goes live, takes
    /// CPU from the copy and verification, and made the swap's first lock wait deadlock_timeout (1 s) for its
    /// cancellation. The swap resets the option and carries the original's; the cut-over analyzes the shadow first.
    /// </summary>
    public bool AutovacuumPaused { get; }

    /// <summary>The attribute number LIKE gave each of the original's columns in the shadow, in the original's order.</summary>
    private IReadOnlyList<int> SourceNumbers { get; }

    /// <summary>
    /// What opening this shadow again needs and the catalog no longer tells once the ALTER ran and the plain indexes
    /// were dropped: the columns' numbers before the ALTER, which original index each shadow index copies, and the
    /// deferred indexes' definitions. JSON, kept in the bookkeeping table for --resume (<see cref="OpenAsync"/>).
    /// </summary>
    public string Layout()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("version", 1);
            json.WriteStartArray("sourceNumbers");
            foreach (int number in SourceNumbers)
            {
                json.WriteNumberValue(number);
            }

            json.WriteEndArray();
            json.WriteStartObject("indexNames");
            foreach ((string shadowIndex, string originalIndex) in IndexNames)
            {
                json.WriteString(shadowIndex, originalIndex);
            }

            json.WriteEndObject();
            json.WriteStartArray("deferredIndexes");
            foreach ((string name, string definition) in DeferredIndexes)
            {
                json.WriteStartObject();
                json.WriteString("name", name);
                json.WriteString("definition", definition);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteBoolean("autovacuumPaused", AutovacuumPaused);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>
    /// The shadow an interrupted run created, for --resume: its columns as the catalog has them now, matched to the
    /// original's by the numbers recorded in <paramref name="layout"/> exactly as at creation, with the index names and
    /// deferred indexes recorded there too. The caller has checked (by the migration's digest) that the original's
    /// columns and key and the ALTER are those the shadow was created for.
    /// </summary>
    public static async Task<PostgresShadowTable> OpenAsync(NpgsqlConnection connection, PostgresTableFacts facts, AlterStatement statement, string layout,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(statement);
        ArgumentNullException.ThrowIfNull(layout);
        var table = facts.Table with { Name = facts.Names.Shadow };
        using JsonDocument document = JsonDocument.Parse(layout);
        JsonElement root = document.RootElement;
        int[] numbers = root.GetProperty("sourceNumbers").EnumerateArray().Select(n => n.GetInt32()).ToArray();
        if (root.GetProperty("version").GetInt32() != 1 || numbers.Length != facts.Columns.Count)
        {
            throw new OscException($"The recorded layout of {table} does not match {facts.Table}.",
                $"Remove the leftovers with `osc cleanup <connection> --table {facts.Table}` and start again.");
        }

        var indexNames = root.GetProperty("indexNames").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal);
        var deferred = root.GetProperty("deferredIndexes").EnumerateArray()
            .Select(i => (i.GetProperty("name").GetString()!, i.GetProperty("definition").GetString()!)).ToList();
        // Absent from layouts recorded before autovacuum was paused: those shadows left it on.
        bool autovacuumPaused = root.TryGetProperty("autovacuumPaused", out JsonElement paused) && paused.GetBoolean();
        uint oid = await new PostgresCatalog(connection).ScalarAsync<uint>("SELECT $1::regclass::oid", cancellationToken, PostgresSql.Quote(table));
        IReadOnlyList<PostgresTableColumn> before = facts.Columns.Select((c, i) => c with { Number = numbers[i] }).ToList();
        IReadOnlyList<PostgresTableColumn> after = await PostgresInspector.ColumnsAsync(connection, oid, cancellationToken);
        return Describe(facts, table, statement, before, after, indexNames, deferred, autovacuumPaused);
    }

    /// <summary>True when a deferred index is a unique one: its build must wait until the shadow has caught up with the original.</summary>
    public bool DefersUniqueKeys => DeferredIndexes.Any(d => d.Definition.StartsWith("ALTER TABLE", StringComparison.Ordinal)
                                                              || d.Definition.StartsWith("CREATE UNIQUE", StringComparison.Ordinal));

    /// <summary>Builds the deferred indexes that do not exist yet. A plain build: it holds off the replay's writes to the shadow, never the application.</summary>
    public async Task BuildDeferredIndexesAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var catalog = new PostgresCatalog(connection);
        foreach ((string name, string definition) in DeferredIndexes)
        {
            if (await catalog.RelationAsync(Table with { Name = name }, cancellationToken) is null)
            {
                await catalog.ExecuteAsync(definition, cancellationToken);
            }
        }
    }

    public IEnumerable<string> DroppedColumns(PostgresTableFacts facts)
    {
        ArgumentNullException.ThrowIfNull(facts);
        var mapped = Mapping.SourceColumns.ToHashSet(StringComparer.Ordinal);
        return facts.Columns.Where(c => !c.Generated && !mapped.Contains(c.Name)).Select(c => c.Name);
    }

    public static Task<PostgresShadowTable> CreateAsync(NpgsqlConnection connection, PostgresTableFacts facts, AlterStatement statement, CancellationToken cancellationToken) =>
        CreateAsync(connection, facts, statement, deferSecondaryIndexes: true, cancellationToken);

    public static async Task<PostgresShadowTable> CreateAsync(NpgsqlConnection connection, PostgresTableFacts facts, AlterStatement statement,
        bool deferSecondaryIndexes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(statement);
        var table = facts.Table with { Name = facts.Names.Shadow };
        var catalog = new PostgresCatalog(connection);
        string tablespace = await catalog.ScalarAsync<string>(
            "SELECT coalesce((SELECT ' TABLESPACE ' || quote_ident(spcname) FROM pg_tablespace WHERE oid = c.reltablespace), '') FROM pg_class c WHERE c.oid = $1",
            cancellationToken, facts.Oid);
        await catalog.ExecuteAsync("SET lock_timeout = '5s'", cancellationToken);
        await catalog.ExecuteAsync($"CREATE TABLE {PostgresSql.Quote(table)} (LIKE {PostgresSql.Quote(facts.Table)} INCLUDING ALL){tablespace}", cancellationToken);
        try
        {
            uint oid = await catalog.ScalarAsync<uint>("SELECT $1::regclass::oid", cancellationToken, PostgresSql.Quote(table));
            IReadOnlyDictionary<string, string> indexNames = await MatchIndexesAsync(connection, facts.Oid, oid, cancellationToken);
            IReadOnlyList<PostgresTableColumn> before = await PostgresInspector.ColumnsAsync(connection, oid, cancellationToken);
            if (statement.ChangeClauses.Any())
            {
                string alter = RenameIndexReferences(statement.RenderFor(PostgresSql.Quote(table)), indexNames.ToDictionary(p => p.Value, p => p.Key, StringComparer.Ordinal));
                try
                {
                    await catalog.ExecuteAsync(alter, cancellationToken);
                }
                catch (PostgresException e)
                {
                    throw new OscException($"The server rejects the ALTER: {e.MessageText} (SQLSTATE {e.SqlState})",
                        "Fix the statement; it was tried only on the (now removed) shadow table, the table is untouched.", e);
                }
            }

            IReadOnlyList<PostgresTableColumn> after = await PostgresInspector.ColumnsAsync(connection, oid, cancellationToken);
            IReadOnlyList<(string, string)> deferred = [];
            if (deferSecondaryIndexes)
            {
                // The unique keys the original already enforces and two rows can collide on go too (UniqueKeys.BuildableAfterCopy).
                PostgresShadowTable draft = Describe(facts, table, statement, before, after, indexNames, [], autovacuumPaused: false);
                IReadOnlyList<UniqueKey> buildable = UniqueKeys.BuildableAfterCopy(await UniqueKeysAsync(connection, facts.Oid, cancellationToken),
                    await draft.ShadowUniqueKeysAsync(connection, oid, cancellationToken), draft.Mapping, draft.KeyInShadow, StringComparer.Ordinal);
                deferred = await DeferIndexesAsync(connection, oid, table, buildable.Select(k => k.Name).ToHashSet(StringComparer.Ordinal), cancellationToken);
            }

            bool pauseAutovacuum = !await catalog.ScalarAsync<bool>(
                "SELECT EXISTS (SELECT FROM pg_class c, unnest(coalesce(c.reloptions, '{}')) o WHERE c.oid = $1 AND o LIKE 'autovacuum\\_enabled=%')",
                cancellationToken, oid);
            if (pauseAutovacuum)
            {
                await catalog.ExecuteAsync($"ALTER TABLE {PostgresSql.Quote(table)} SET (autovacuum_enabled = false)", cancellationToken);
            }

            PostgresShadowTable shadow = Describe(facts, table, statement, before, after, indexNames, deferred, pauseAutovacuum);
            await EnsureReplayKeyAsync(connection, oid, table, facts.Names.ReplayKey, shadow.KeyInShadow, cancellationToken);
            return shadow;
        }
        catch
        {
            await DropAsync(connection, table);
            throw;
        }
    }

    /// <summary>
    /// The replay writes by the original's key (ON CONFLICT on its columns, deletes by it), which needs a unique index
    /// over exactly those columns; an ALTER that changes the primary key leaves the shadow none. One is built on the
    /// empty shadow then, and the swap drops it: the new table has only the keys the ALTER asked for. The original's
    /// key is unique in every row the shadow receives, so the index refuses nothing the original holds.
    /// </summary>
    private static async Task EnsureReplayKeyAsync(NpgsqlConnection connection, uint oid, TableName shadow, string index, IReadOnlyList<string> key,
        CancellationToken cancellationToken)
    {
        // What ON CONFLICT can infer as its arbiter: a valid, immediate, non-partial unique index on plain columns.
        var catalog = new PostgresCatalog(connection);
        if (!(await UniqueKeysAsync(connection, oid, cancellationToken))
                .Any(k => k.Extra.Length == 0 && k.Columns.All(c => c is not null) && k.Columns.ToHashSet(StringComparer.Ordinal).SetEquals(key)))
        {
            try
            {
                await catalog.ExecuteAsync(
                    $"CREATE UNIQUE INDEX {PostgresSql.Quote(index)} ON {PostgresSql.Quote(shadow)} ({string.Join(", ", key.Select(PostgresSql.Quote))})",
                    cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateTable)
            {
                throw new OscException($"{shadow.Schema}.{index} exists, and osc needs the name for the replay's index on the shadow (the ALTER changes the primary key).",
                    $"Rename that relation (ALTER INDEX ... RENAME TO ...), then run again; the table is untouched.", e);
            }
        }
    }

    /// <summary>
    /// Without verification, refuses a shadow with a unique index the original does not enforce on the same values, or
    /// with any unique index or exclusion constraint that two rows of different keys can collide on: the copy would
    /// skip a row colliding on it without a word (<see cref="UniqueKeys"/>). The replay's own index
    /// (<see cref="EnsureReplayKeyAsync"/>) counts too: over a retyped key column it can make original keys collide.
    /// </summary>
    public async Task RefuseUnverifiedUniqueKeyAsync(NpgsqlConnection connection, PostgresTableFacts facts, bool verify, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(facts);
        if (verify)
        {
            return;
        }

        uint oid = await new PostgresCatalog(connection).ScalarAsync<uint>("SELECT $1::regclass::oid", cancellationToken, PostgresSql.Quote(Table));
        IReadOnlyList<UniqueKey> shadowKeys = await ShadowUniqueKeysAsync(connection, oid, cancellationToken);
        UniqueKey? added = UniqueKeys.FirstNew(await UniqueKeysAsync(connection, facts.Oid, cancellationToken), shadowKeys, Mapping, StringComparer.Ordinal);
        if (added is not null)
        {
            throw UniqueKeys.Unverified(added);
        }

        if (UniqueKeys.FirstBesideKey(shadowKeys, KeyInShadow, StringComparer.Ordinal) is { } beside)
        {
            // Named as the operator knows it: the shadow's copy of an index has a generated name until the swap.
            throw UniqueKeys.UnverifiedBesideKey(IndexNames.TryGetValue(beside.Name, out string? known) ? beside with { Name = known } : beside);
        }
    }

    /// <summary>
    /// The shadow's unique keys, each column the ALTER fills through USING counted as retyped: such a column may keep its
    /// type and still change its values (lower(email), round(x)), so the key is not the original's any more.
    /// </summary>
    private async Task<IReadOnlyList<UniqueKey>> ShadowUniqueKeysAsync(NpgsqlConnection connection, uint oid, CancellationToken cancellationToken)
    {
        // A column the ALTER fills through USING may keep its type and still change its values (lower(email),
        // round(x)): it counts as retyped.
        var converted = SourceExpressions.Where(e => e.Value != PostgresSql.Quote(Mapping.Pairs.First(p => p.Target == e.Key).Source))
            .ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
        // An expression or predicate is not read for the columns it names: with any column converted, such a key counts
        // as changed.
        return (await UniqueKeysAsync(connection, oid, cancellationToken))
            .Select(k => k with
            {
                ColumnTypes = k.Columns.Select((c, i) => c is not null && converted.TryGetValue(c, out string? expression) ? $"{k.ColumnTypes[i]} using {expression}" : k.ColumnTypes[i]).ToList(),
                Extra = k.Extra.Length > 0 && converted.Count > 0 ? k.Extra + " | after USING " + string.Join(", ", converted.Keys) : k.Extra,
            })
            .ToList();
    }

    /// <summary>
    /// The relation's valid unique and exclusion indexes (an INVALID one, left by a failed concurrent build, enforces
    /// nothing): key columns (null for an expression), each one's type and collation, the expressions, the predicate,
    /// the exclusion constraint and deferrability, and NULLS NOT DISTINCT.
    /// </summary>
    private static async Task<IReadOnlyList<UniqueKey>> UniqueKeysAsync(NpgsqlConnection connection, uint relation, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT c.relname,
                   array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k (attnum, n)
                         LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE k.n <= i.indnkeyatts ORDER BY k.n),
                   array(SELECT concat_ws(' ', format_type(a.atttypid, a.atttypmod), l.collname) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k (attnum, n)
                         LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                         LEFT JOIN pg_collation l ON l.oid = (i.indcollation::oid[])[k.n - 1]
                         WHERE k.n <= i.indnkeyatts ORDER BY k.n),
                   concat_ws(' | ', pg_get_expr(i.indexprs, i.indrelid), 'where ' || pg_get_expr(i.indpred, i.indrelid),
                             CASE WHEN i.indisexclusion THEN 'exclude ' || (SELECT pg_get_constraintdef(x.oid) FROM pg_constraint x WHERE x.conindid = i.indexrelid) END,
                             CASE WHEN NOT i.indimmediate THEN 'deferrable' END),
                   -- NULLS NOT DISTINCT came with PostgreSQL 15; read so that older servers answer false.
                   coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false),
                   i.indisexclusion
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = $1 AND (i.indisunique OR i.indisexclusion) AND i.indisvalid
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = relation, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        var keys = new List<UniqueKey>();
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(new UniqueKey(reader.GetString(0), reader.GetFieldValue<string?[]>(1), reader.GetFieldValue<string[]>(2), reader.GetString(3), reader.GetBoolean(4), reader.GetBoolean(5)));
        }

        return keys;
    }

    /// <summary>Drops the shadow; not cancellable, since it must go even when the operator pressed Ctrl-C.</summary>
    public Task DropAsync(NpgsqlConnection connection) => DropAsync(connection, Table);

    private static async Task DropAsync(NpgsqlConnection connection, TableName table)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await new PostgresCatalog(connection).ExecuteAsync($"DROP TABLE IF EXISTS {PostgresSql.Quote(table)}", timeout.Token);
    }

    private static PostgresShadowTable Describe(PostgresTableFacts facts, TableName table, AlterStatement statement,
        IReadOnlyList<PostgresTableColumn> before, IReadOnlyList<PostgresTableColumn> after, IReadOnlyDictionary<string, string> indexNames,
        IReadOnlyList<(string Name, string Definition)> deferredIndexes, bool autovacuumPaused)
    {
        // LIKE numbers the copy's columns 1..n in the original's order (the original may have gaps from dropped
        // columns); the ALTER then keeps each surviving column's number, whatever it renames it to.
        var afterByNumber = after.ToDictionary(c => c.Number);
        var renames = new Dictionary<string, string>(StringComparer.Ordinal);
        var fedTargets = new List<TableColumn>();
        for (int i = 0; i < facts.Columns.Count; i++)
        {
            if (afterByNumber.TryGetValue(before[i].Number, out PostgresTableColumn? target))
            {
                renames[facts.Columns[i].Name] = target.Name;
                fedTargets.Add(new TableColumn(target.Name, target.Generated));
            }
        }

        // Only targets that descend from a source column are candidates: a column dropped and added again under the
        // same name is a new column and takes its default.
        ColumnMapping mapping = ColumnMapping.Build(
            facts.Columns.Select(c => new TableColumn(c.Name, c.Generated)).ToList(), fedTargets, renames);

        string?[] keyInShadow = facts.Key.Select(k => mapping.Pairs.FirstOrDefault(p => p.Source == k).Target).ToArray();
        if (keyInShadow.Any(k => k is null))
        {
            throw new OscException($"The ALTER drops a column of the key {facts.KeyName} ({string.Join(", ", facts.Key)}) that matches changes to rows.",
                "Keep the key's columns, or change the key in a separate migration first.");
        }

        var mappedTargets = mapping.TargetColumns.ToHashSet(StringComparer.Ordinal);
        PostgresTableColumn? unfillable = after.FirstOrDefault(c => !mappedTargets.Contains(c.Name) && c.NotNull && !c.HasDefault && !c.Generated && c.Identity == '\0');
        if (unfillable is not null)
        {
            throw new OscException($"The ALTER adds {unfillable.Name} as NOT NULL without a default: copied rows would have no value for it.",
                $"Give it a default (ADD COLUMN {unfillable.Name} ... NOT NULL DEFAULT ...), or add it nullable and fill it afterwards.");
        }

        Dictionary<string, string> usings = UsingExpressions(statement);
        var expressions = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (_, source, target) in mapping.Pairs)
        {
            expressions[target] = usings.TryGetValue(source, out string? expression) ? $"({expression})" : PostgresSql.Quote(source);
        }

        return new PostgresShadowTable(table, after, mapping, keyInShadow!, expressions, indexNames, deferredIndexes, before.Select(c => c.Number).ToList(),
            autovacuumPaused);
    }

    /// <summary>
    /// Drops the shadow's plain indexes, and the unique ones named in <paramref name="unique"/> (with their constraints),
    /// and returns how to build them again: schema-qualified definitions, a constraint's as the ALTER TABLE that adds it
    /// under its own name, so its index gets that name back. The primary key and the replica identity stay.
    /// </summary>
    private static async Task<IReadOnlyList<(string Name, string Definition)>> DeferIndexesAsync(NpgsqlConnection connection, uint shadow, TableName table,
        IReadOnlySet<string> unique, CancellationToken cancellationToken)
    {
        var indexes = new List<(string, string)>();
        var drops = new List<string>();
        await using (var command = new NpgsqlCommand(
            """
            SELECT c.relname, pg_get_indexdef(i.indexrelid), format('%I.%I', n.nspname, c.relname), x.conname, pg_get_constraintdef(x.oid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_constraint x ON x.conindid = i.indexrelid AND x.conrelid = i.indrelid AND x.contype IN ('u', 'x')
            WHERE i.indrelid = $1 AND NOT i.indisreplident AND NOT i.indisprimary
              AND ((NOT i.indisunique AND NOT i.indisexclusion AND NOT EXISTS (SELECT FROM pg_constraint WHERE conindid = i.indexrelid))
                   OR (c.relname = ANY($2) AND (x.oid IS NOT NULL OR NOT EXISTS (SELECT FROM pg_constraint WHERE conindid = i.indexrelid))))
            ORDER BY c.relname
            """, connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = shadow, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
            command.Parameters.Add(new NpgsqlParameter { Value = unique.ToArray() });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                if (reader.IsDBNull(3))
                {
                    indexes.Add((reader.GetString(0), reader.GetString(1)));
                    drops.Add("DROP INDEX " + reader.GetString(2));
                }
                else
                {
                    string constraint = PostgresSql.Quote(reader.GetString(3));
                    indexes.Add((reader.GetString(0), $"ALTER TABLE {PostgresSql.Quote(table)} ADD CONSTRAINT {constraint} {reader.GetString(4)}"));
                    drops.Add($"ALTER TABLE {PostgresSql.Quote(table)} DROP CONSTRAINT {constraint}");
                }
            }
        }

        var catalog = new PostgresCatalog(connection);
        foreach (string drop in drops)
        {
            // The shadow is still empty: dropping is instant.
            await catalog.ExecuteAsync(drop, cancellationToken);
        }

        return indexes;
    }

    /// <summary>Shadow index name to original index name, matched by definition (the part after USING names no table or index).</summary>
    private static async Task<IReadOnlyDictionary<string, string>> MatchIndexesAsync(NpgsqlConnection connection, uint original, uint shadow, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            WITH defs AS (
              SELECT i.indrelid AS rel, c.relname AS name, i.indisunique AS uniq, i.indisprimary AS prim, split_part(pg_get_indexdef(i.indexrelid), ' USING ', 2) AS def
              FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid IN ($1, $2))
            SELECT s.name, o.name FROM defs o JOIN defs s ON o.rel = $1 AND s.rel = $2 AND s.def = o.def AND s.uniq = o.uniq AND s.prim = o.prim
            ORDER BY o.name, s.name
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = original, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        command.Parameters.Add(new NpgsqlParameter { Value = shadow, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        var taken = new HashSet<string>(StringComparer.Ordinal);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            // Two identical indexes match each other crosswise; pair them off one to one.
            if (!names.ContainsKey(reader.GetString(0)) && taken.Add(reader.GetString(1)))
            {
                names[reader.GetString(0)] = reader.GetString(1);
            }
        }

        return names;
    }

    /// <summary>
    /// Points the ALTER's references to the original's indexes and index-backed constraints (DROP CONSTRAINT t_pkey,
    /// REPLICA IDENTITY USING INDEX t_k) at the shadow's copies, which LIKE named differently.
    /// </summary>
    internal static string RenameIndexReferences(string sql, IReadOnlyDictionary<string, string> originalToShadow)
    {
        var tokens = SqlLexer.Tokenize(sql, SqlDialect.Postgres);
        var result = new StringBuilder();
        int copied = 0;
        for (int i = 1; i < tokens.Count; i++)
        {
            SqlToken token = tokens[i];
            bool afterObjectWord = tokens[i - 1].IsWord("CONSTRAINT") || tokens[i - 1].IsWord("INDEX")
                                   || (i >= 3 && tokens[i - 1].IsWord("EXISTS") && tokens[i - 2].IsWord("IF") && tokens[i - 3].IsWord("CONSTRAINT"));
            if (afterObjectWord && token.IsIdentifier && originalToShadow.TryGetValue(token.IdentifierValue, out string? shadowName))
            {
                result.Append(sql, copied, token.Start - copied).Append(PostgresSql.Quote(shadowName));
                copied = token.End;
            }
        }

        return result.Append(sql, copied, sql.Length - copied).ToString();
    }

    /// <summary>ALTER COLUMN c [SET DATA] TYPE t USING expr: the expression, by column, to compute the new value from the old row.</summary>
    private static Dictionary<string, string> UsingExpressions(AlterStatement statement)
    {
        var usings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (AlterClause clause in statement.ChangeClauses.Where(c => c.Kind == AlterClauseKind.RetypeColumn && c.Column is not null))
        {
            var tokens = SqlLexer.Tokenize(clause.Text, SqlDialect.Postgres);
            int depth = 0;
            for (int i = 0; i < tokens.Count; i++)
            {
                depth += tokens[i].IsPunctuation('(') ? 1 : tokens[i].IsPunctuation(')') ? -1 : 0;
                if (depth == 0 && tokens[i].IsWord("USING") && i + 1 < tokens.Count)
                {
                    usings[clause.Column!] = clause.Text[tokens[i + 1].Start..];
                    break;
                }
            }
        }

        return usings;
    }
}
