using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>A column of the original, by attribute number (the identity PostgreSQL keeps across renames).</summary>
/// <param name="Identity">pg_attribute.attidentity: 'a' (ALWAYS), 'd' (BY DEFAULT) or '\0'.</param>
/// <param name="Generated">A stored generated column: never copied, the shadow computes its own.</param>
public sealed record PostgresTableColumn(int Number, string Name, string Type, bool NotNull, bool HasDefault, char Identity, bool Generated);

/// <summary>What the inspector found about the table and the server, all of it checked before anything is created.</summary>
/// <param name="Table">Schema-qualified.</param>
/// <param name="Key">The columns that identify a row: the primary key, or the replica identity index.</param>
public sealed record PostgresTableFacts(
    TableName Table,
    uint Oid,
    string ServerVersion,
    IReadOnlyList<PostgresTableColumn> Columns,
    IReadOnlyList<string> Key,
    string KeyName,
    long EstimatedRows,
    long TotalBytes,
    ShadowNames Names)
{
    public PostgresTableColumn Column(string name) => Columns.First(c => c.Name == name);
}

/// <summary>
/// Checks everything that would make an online ALTER unsafe or impossible on PostgreSQL, before anything is created,
/// and refuses with the problem and its fix: logical decoding off, no replication slot or WAL sender free, no
/// REPLICATION privilege, no key to match changes by, partitioned or inheritance tables, an ALTER that renames the
/// table, leftovers of an earlier run.
/// </summary>
public sealed class PostgresInspector(NpgsqlConnection connection)
{
    /// <summary>NAMEDATALEN - 1: longer identifiers are silently truncated, which would make our names collide.</summary>
    public const int MaxIdentifierLength = 63;

    /// <param name="table">The table to alter.</param>
    /// <param name="statement">The ALTER.</param>
    /// <param name="cancellationToken">Cancels the checks.</param>
    /// <param name="resuming">
    /// Continuing an interrupted run: its shadow and bookkeeping table are expected rather than refused, and it streams
    /// from its own slot, so it needs no free one.
    /// </param>
    public async Task<PostgresTableFacts> InspectAsync(TableName table, AlterStatement statement, CancellationToken cancellationToken, bool resuming = false)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(statement);
        if (statement.RenamesTable)
        {
            throw new OscException("The ALTER renames the table; an online rebuild keeps the table's name.",
                "Rename it separately (ALTER TABLE ... RENAME TO is instant), or see `osc plan` for the expand-contract steps.");
        }

        if (statement.Kind == AlterStatementKind.CreateIndex)
        {
            throw new OscException("CREATE INDEX has a non-blocking form on PostgreSQL: CREATE INDEX CONCURRENTLY, which needs no table rebuild.",
                "Run `osc plan` for the exact statement, or pass the index as --alter \"ADD CONSTRAINT ... UNIQUE (...)\" to rebuild the table anyway.");
        }

        var catalog = new PostgresCatalog(connection);
        string version = await catalog.ScalarAsync<string>("SHOW server_version", cancellationToken);
        await CheckReplicationAsync(catalog, resuming, cancellationToken);

        string schema = table.Schema ?? await catalog.ScalarAsync<string>("SELECT current_schema()", cancellationToken);
        var qualified = new TableName(schema, table.Name);
        PostgresCatalog.RelationInfo relation = await catalog.RelationAsync(qualified, cancellationToken) ?? throw new OscException(
            $"Table {qualified} does not exist.", "Check the schema and table names; unquoted names are lower case in PostgreSQL.");
        if (relation.Kind is not ('r' or 'p'))
        {
            throw new OscException($"{qualified} is not a table (relkind '{relation.Kind}').", "Alter the table it reads from.");
        }

        if (await WhyNoOnlineRebuildAsync(catalog, qualified, relation, cancellationToken) is { } refusal)
        {
            throw refusal;
        }
        if (!await catalog.ScalarAsync<bool>("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = $1", cancellationToken, relation.Oid))
        {
            throw new OscException($"The user {connection.UserName} does not own {qualified}: the swap renames it and recreates its grants, which only its owner can do.",
                "Connect as the table's owner (or a member of the owning role).");
        }

        IReadOnlyList<PostgresTableColumn> columns = await ColumnsAsync(connection, relation.Oid, cancellationToken);
        (string keyName, IReadOnlyList<string> key) = await ChooseKeyAsync(qualified, relation.Oid, cancellationToken);

        var names = new ShadowNames(table.Name, MaxIdentifierLength);
        if (!resuming && await LeftoverTableAsync(catalog, qualified, names, cancellationToken) is { } leftover)
        {
            throw new OscException($"{schema}.{leftover} exists: an earlier migration of {table.Name} did not finish.",
                $"Resume it with --resume, or remove it with `osc cleanup <connection> --table {qualified}`.");
        }

        var old = qualified with { Name = names.Old };
        if (await catalog.RelationAsync(old, cancellationToken) is not null)
        {
            throw new OscException($"{old} exists: the original kept by an earlier migration of {table.Name}.",
                $"Drop it once you no longer need it: `osc cleanup <connection> --table {qualified} --drop-old-table`.");
        }

        return new PostgresTableFacts(qualified, relation.Oid, version, columns, key, keyName, relation.Size.EstimatedRows, relation.Size.TotalBytes, names);
    }

    private async Task CheckReplicationAsync(PostgresCatalog catalog, bool resuming, CancellationToken cancellationToken)
    {
        string walLevel = await catalog.ScalarAsync<string>("SHOW wal_level", cancellationToken);
        if (walLevel != "logical")
        {
            throw new OscException($"wal_level is {walLevel}; osc replays concurrent changes through logical replication, which needs wal_level = logical.",
                "ALTER SYSTEM SET wal_level = logical, then restart the server (the setting takes effect only at start).");
        }

        await using (var command = new NpgsqlCommand(
            """
            SELECT current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
                   current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int
            """, connection))
        await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            await reader.ReadAsync(cancellationToken);
            int maxSlots = reader.GetInt32(0), slots = reader.GetInt32(1), maxSenders = reader.GetInt32(2), senders = reader.GetInt32(3);
            if (slots >= maxSlots && !resuming)
            {
                throw new OscException($"No replication slot is free: {slots} of max_replication_slots = {maxSlots} are in use, and osc needs one.",
                    "Drop an unused slot (SELECT slot_name, active FROM pg_replication_slots; SELECT pg_drop_replication_slot('...')), or raise max_replication_slots and restart.");
            }

            if (senders >= maxSenders)
            {
                throw new OscException($"No WAL sender is free: {senders} of max_wal_senders = {maxSenders} are in use, and osc's replication connection needs one.",
                    "Raise max_wal_senders (and restart), or wait until a replica or backup disconnects.");
            }
        }

        if (!await catalog.ScalarAsync<bool>("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", cancellationToken))
        {
            throw new OscException($"The user {connection.UserName} has neither the REPLICATION attribute nor superuser; osc streams the table's changes over a replication connection.",
                $"ALTER ROLE {PostgresSql.Quote(connection.UserName ?? "<user>")} REPLICATION (and allow it in pg_hba.conf for replication connections).");
        }
    }

    /// <summary>
    /// Why osc cannot rebuild this table online, or null when it can: a partitioned table, a partition, or a table in an
    /// inheritance tree (a swapped-in copy would be outside the tree). `osc plan` reports the same reasons.
    /// </summary>
    internal static async Task<OscException?> WhyNoOnlineRebuildAsync(PostgresCatalog catalog, TableName table, PostgresCatalog.RelationInfo relation,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(relation);
        if (relation.Kind == 'p')
        {
            return new OscException($"{table} is a partitioned table; osc does not rebuild partitioned tables online, nor their partitions (a swapped-in copy would not be attached).",
                "Change the partitioned table natively (each partition is rewritten under its own lock), or create a new partition set and move the rows in batches.");
        }

        if (await catalog.ScalarAsync<bool>("SELECT relispartition FROM pg_class WHERE oid = $1", cancellationToken, relation.Oid))
        {
            return new OscException($"{table} is a partition of a partitioned table; swapping it would detach it from its parent.",
                "Change the partitioned table natively, or detach the partition, change it, and attach it again.");
        }

        long parents = await catalog.ScalarAsync<long>("SELECT count(*) FROM pg_inherits WHERE inhrelid = $1", cancellationToken, relation.Oid);
        long children = await catalog.ScalarAsync<long>("SELECT count(*) FROM pg_inherits WHERE inhparent = $1", cancellationToken, relation.Oid);
        if (parents > 0 || children > 0)
        {
            return new OscException(
                $"{table} takes part in table inheritance ({(parents > 0 ? "it inherits from another table" : $"{children} table(s) inherit from it")}); a rebuilt copy would not.",
                "Change it natively (ALTER TABLE recurses through inheritance), or remove the inheritance first.");
        }

        return null;
    }

    /// <summary>A relation's live columns in attribute order (the shadow reads its own the same way).</summary>
    internal static async Task<IReadOnlyList<PostgresTableColumn>> ColumnsAsync(NpgsqlConnection connection, uint oid, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT attnum, attname, format_type(atttypid, atttypmod), attnotnull, atthasdef, attidentity, attgenerated <> ''
            FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        var columns = new List<PostgresTableColumn>();
        while (await reader.ReadAsync(cancellationToken))
        {
            columns.Add(new PostgresTableColumn(reader.GetInt16(0), reader.GetString(1), reader.GetString(2), reader.GetBoolean(3),
                reader.GetBoolean(4), reader.GetChar(5), reader.GetBoolean(6)));
        }

        return columns;
    }

    /// <summary>The first table a run creates next to <paramref name="qualified"/> that is there now: an unfinished run's.</summary>
    internal static async Task<string?> LeftoverTableAsync(PostgresCatalog catalog, TableName qualified, ShadowNames names, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(names);
        foreach (string leftover in names.Created)
        {
            if (await catalog.RelationAsync(qualified with { Name = leftover }, cancellationToken) is not null)
            {
                return leftover;
            }
        }

        return null;
    }

    /// <summary>
    /// The primary key, or the replica identity index when there is none. The key must also be what logical
    /// replication sends for updates and deletes: with REPLICA IDENTITY NOTHING (or DEFAULT and no primary key), a table
    /// in a publication refuses the application's UPDATEs and DELETEs outright.
    /// </summary>
    private async Task<(string Name, IReadOnlyList<string> Columns)> ChooseKeyAsync(TableName table, uint oid, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT c.relreplident, ic.relname, i.indisprimary, i.indisreplident,
                   array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
            FROM pg_class c LEFT JOIN pg_index i ON i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)
            LEFT JOIN pg_class ic ON ic.oid = i.indexrelid
            WHERE c.oid = $1 ORDER BY i.indisprimary DESC
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        char identity = 'd';
        (string, string[])? primary = null, replicaIdentity = null;
        await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                identity = reader.GetChar(0);
                if (reader.IsDBNull(1))
                {
                    continue;
                }

                var index = (reader.GetString(1), reader.GetFieldValue<string[]>(4));
                if (reader.GetBoolean(2))
                {
                    primary = index;
                }

                if (reader.GetBoolean(3))
                {
                    replicaIdentity = index;
                }
            }
        }

        switch (identity)
        {
            case 'n':
                throw new OscException($"{table} has REPLICA IDENTITY NOTHING: logical replication would not say which row an UPDATE or DELETE changed, and the table's UPDATEs would fail once it is published.",
                    $"ALTER TABLE {PostgresSql.Quote(table)} REPLICA IDENTITY DEFAULT (with a primary key), or USING INDEX a unique index over NOT NULL columns.");
            case 'i' when replicaIdentity is not null:
                // Deletes and key changes carry the replica identity's columns, so that is the key the replay matches on.
                return (replicaIdentity.Value.Item1, replicaIdentity.Value.Item2);
            case 'd' or 'f' when primary is not null:
                return (primary.Value.Item1, primary.Value.Item2);
            default:
                throw new OscException($"{table} has no primary key (and no replica identity index): changes cannot be matched to rows, and a published table without one refuses UPDATE and DELETE.",
                    "Add a primary key first (ADD PRIMARY KEY USING INDEX over a unique index built CONCURRENTLY avoids a long lock), or set REPLICA IDENTITY USING INDEX on a unique index over NOT NULL columns.");
        }
    }
}
