using Npgsql;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Postgres.Plan;

/// <summary>The catalog questions the planner asks, over one open connection (and so inside its transaction).</summary>
internal sealed class PostgresCatalog(NpgsqlConnection connection)
{
    public async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<T> ScalarAsync<T>(string sql, CancellationToken cancellationToken, params object[] args)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (object arg in args)
        {
            // A relation's oid arrives as uint, which Npgsql only writes when told it is an oid.
            command.Parameters.Add(arg is uint oid ? new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid } : new NpgsqlParameter { Value = arg });
        }

        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public sealed record RelationInfo(uint Oid, char Kind, TableSize Size);

    public async Task<RelationInfo?> RelationAsync(TableName table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT c.oid, c.relkind, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = table.Schema! });
        command.Parameters.Add(new NpgsqlParameter { Value = table.Name });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new RelationInfo(reader.GetFieldValue<uint>(0), reader.GetChar(1), new TableSize(reader.GetInt64(2), reader.GetInt64(3)));
    }

    public async Task<IReadOnlyList<PostgresColumn>> ColumnsAsync(uint relation, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT attnum, attname, format_type(atttypid, atttypmod), attnotnull, atthasdef, attgenerated <> '' OR attidentity <> ''
            FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = relation, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        var columns = new List<PostgresColumn>();
        while (await reader.ReadAsync(cancellationToken))
        {
            columns.Add(new PostgresColumn(reader.GetInt16(0), reader.GetString(1), reader.GetString(2), reader.GetBoolean(3), reader.GetBoolean(4), reader.GetBoolean(5)));
        }

        return columns;
    }

    public async Task<IReadOnlyList<string>> PrimaryKeyAsync(uint relation, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = relation, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        var key = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            key.Add(reader.GetString(0));
        }

        return key;
    }

    /// <summary>What identifies the table's storage: its file node, its indexes' file nodes and its scan count.</summary>
    public async Task<StorageState> StorageAsync(uint relation, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT pg_relation_filenode($1::oid)::bigint, pg_stat_get_xact_numscans($1::oid),
                   coalesce((SELECT string_agg(indexrelid::text || ':' || pg_relation_filenode(indexrelid)::text, ',' ORDER BY indexrelid)
                             FROM pg_index WHERE indrelid = $1::oid), '')
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = relation, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new StorageState(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2));
    }

    /// <summary>Table-level locks this session holds now: (relation, table name, pg_locks mode).</summary>
    public async Task<IReadOnlySet<(uint Relation, string Table, string Mode)>> HeldLocksAsync(CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT l.relation, n.nspname || '.' || c.relname, l.mode
            FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND c.relkind IN ('r', 'p')
            """, connection);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        var locks = new HashSet<(uint, string, string)>();
        while (await reader.ReadAsync(cancellationToken))
        {
            locks.Add((reader.GetFieldValue<uint>(0), reader.GetString(1), reader.GetString(2)));
        }

        return locks;
    }

    /// <summary>
    /// Gives the copy's indexes and index-backed constraints the names they have on the original (LIKE makes up new
    /// ones), so an ALTER that names them ("DROP CONSTRAINT orders_pkey") works on the copy. Only for a temp copy,
    /// whose schema is its own: in the original's schema the names would collide.
    /// </summary>
    public async Task AlignIndexNamesAsync(uint original, uint copy, string quotedCopy, CancellationToken cancellationToken)
    {
        // An index's definition after "USING" names no table and no index, so it matches between the two tables.
        await using var command = new NpgsqlCommand(
            """
            WITH defs AS (
              SELECT i.indrelid AS rel, c.relname AS name, i.indisunique AS uniq, split_part(pg_get_indexdef(i.indexrelid), ' USING ', 2) AS def,
                     con.conname AS constraint_name
              FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
              WHERE i.indrelid IN ($1, $2))
            SELECT o.name, c.name, c.constraint_name IS NOT NULL, o.constraint_name
            FROM defs o JOIN defs c ON c.rel = $2 AND o.rel = $1 AND c.def = o.def AND c.uniq = o.uniq
            WHERE o.name <> c.name
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = original, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        command.Parameters.Add(new NpgsqlParameter { Value = copy, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        var renames = new List<(string Original, string Copy, bool IsConstraint, string? OriginalConstraint)>();
        await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                renames.Add((reader.GetString(0), reader.GetString(1), reader.GetBoolean(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
            }
        }

        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach ((string originalName, string copyName, bool isConstraint, string? originalConstraint) in renames)
        {
            if (!used.Add(copyName) || !used.Add("=" + originalName))
            {
                continue;
            }

            string sql = isConstraint
                ? $"ALTER TABLE {quotedCopy} RENAME CONSTRAINT {PostgresSql.Quote(copyName)} TO {PostgresSql.Quote(originalConstraint ?? originalName)}"
                : $"ALTER INDEX pg_temp.{PostgresSql.Quote(copyName)} RENAME TO {PostgresSql.Quote(originalName)}";
            await ExecuteAsync(sql, cancellationToken);
        }
    }

    public sealed record StorageState(long FileNode, long Scans, string Indexes);
}
