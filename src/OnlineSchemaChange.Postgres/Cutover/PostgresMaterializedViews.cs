using System.Diagnostics;
using System.Globalization;
using Npgsql;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Cutover;

/// <summary>
/// Materialized views on the migrated table, rebuilt on the new table after the swap. A materialized view names its
/// table by oid, so after the swap it still reads the old table, and its next REFRESH would silently read data that
/// no longer changes. It cannot be pointed elsewhere in place, and recreating it inside the swap would hold the lock
/// for as long as its query runs, or leave it empty (WITH NO DATA) for readers. So: the definitions are captured in
/// the swap (before the rename, schema-qualified); after it, each view is built again under a temporary name against
/// the new table, with its indexes, while the old one keeps serving readers; then a short transaction (lock_timeout,
/// retried) drops the old one and gives the new one its name, index names, owner, comment and grants. Its content is
/// then as of the rebuild, as after a REFRESH. A view that other views depend on, or whose query no longer runs on the
/// new table, is left as it was, reading the old table, with a note saying what to do.
/// </summary>
public sealed class PostgresMaterializedViews(string connectionString, TimeSpan lockTimeout, int attempts)
{
    /// <summary>One captured view; <see cref="Dependents"/> non-null means it is left alone.</summary>
    public sealed record View(uint Oid, string Name, string Definition, string Options, string? Tablespace, bool Populated, string Owner,
        string? Comment, string? Grants, IReadOnlyList<(uint Oid, string QuotedName, string Definition)> Indexes, string? Dependents);

    /// <summary>Reads, in the swap's transaction (search_path = pg_catalog), every materialized view on the table.</summary>
    public static async Task<IReadOnlyList<View>> CaptureAsync(NpgsqlConnection connection, uint table, CancellationToken cancellationToken)
    {
        var views = new List<View>();
        await using (var command = new NpgsqlCommand(
            """
            SELECT DISTINCT v.oid, format('%I.%I', n.nspname, v.relname), pg_get_viewdef(v.oid), coalesce(array_to_string(v.reloptions, ', '), ''),
                   (SELECT quote_ident(spcname) FROM pg_tablespace WHERE oid = v.reltablespace), v.relispopulated, pg_get_userbyid(v.relowner),
                   obj_description(v.oid, 'pg_class'),
                   (SELECT string_agg(format('GRANT %s ON %I.%I TO %s%s', a.privilege_type, n.nspname, v.relname,
                                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                                             CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '; ')
                    FROM aclexplode(v.relacl) a),
                   (SELECT string_agg(DISTINCT format('%I.%I', dn.nspname, dv.relname), ', ')
                    FROM pg_depend dd JOIN pg_rewrite dr ON dr.oid = dd.objid JOIN pg_class dv ON dv.oid = dr.ev_class JOIN pg_namespace dn ON dn.oid = dv.relnamespace
                    WHERE dd.classid = 'pg_rewrite'::regclass AND dd.refclassid = 'pg_class'::regclass AND dd.refobjid = v.oid AND dv.oid <> v.oid)
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND v.relkind = 'm'
            ORDER BY v.oid
            """, connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = table, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                views.Add(new View((uint)reader.GetValue(0), reader.GetString(1), reader.GetString(2).TrimEnd(';', ' ', '\n'), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetBoolean(5), reader.GetString(6),
                    reader.IsDBNull(7) ? null : reader.GetString(7), reader.IsDBNull(8) ? null : reader.GetString(8), [], reader.IsDBNull(9) ? null : reader.GetString(9)));
            }
        }

        for (int i = 0; i < views.Count; i++)
        {
            var indexes = new List<(uint, string, string)>();
            await using var command = new NpgsqlCommand(
                "SELECT indexrelid, (SELECT quote_ident(relname) FROM pg_class WHERE oid = indexrelid), pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1 ORDER BY indexrelid",
                connection);
            command.Parameters.Add(new NpgsqlParameter { Value = views[i].Oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                indexes.Add(((uint)reader.GetValue(0), reader.GetString(1), reader.GetString(2)));
            }

            views[i] = views[i] with { Indexes = indexes };
        }

        return views;
    }

    /// <summary>Rebuilds each view on the new table; returns one note per view saying what happened.</summary>
    public async Task<IReadOnlyList<string>> RebuildAsync(IReadOnlyList<View> views, string oldTable, CancellationToken cancellationToken)
    {
        var notes = new List<string>();
        foreach (View view in views)
        {
            if (view.Dependents is not null)
            {
                notes.Add($"The materialized view {view.Name} still reads {oldTable}: {view.Dependents} depend on it, so it was not rebuilt. "
                          + $"Recreate it (and them) on the new table before dropping {oldTable}.");
                continue;
            }

            try
            {
                var clock = Stopwatch.StartNew();
                await RebuildAsync(view, cancellationToken);
                notes.Add(string.Create(CultureInfo.InvariantCulture,
                    $"The materialized view {view.Name} was rebuilt on the new table ({clock.Elapsed.TotalSeconds:0.0} s){(view.Populated ? ", its content as of now, as after a REFRESH" : ", unpopulated as it was")}."));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                notes.Add($"The materialized view {view.Name} still reads {oldTable}: its rebuild on the new table was interrupted. "
                          + $"Recreate it on the new table before dropping {oldTable}.");
                continue;
            }
            catch (Exception e) when (e is PostgresException or RebuildException)
            {
                string reason = e is PostgresException p ? $"{p.MessageText} (SQLSTATE {p.SqlState})" : e.Message;
                notes.Add($"The materialized view {view.Name} still reads {oldTable}: rebuilding it on the new table failed: {reason}. "
                          + $"Adjust its query to the new table and recreate it before dropping {oldTable}.");
            }
        }

        return notes;
    }

    private async Task RebuildAsync(View view, CancellationToken cancellationToken)
    {
        string schema = view.Name[..SchemaLength(view.Name)];
        string temporary = Temporary(view.Oid);
        string with = view.Options.Length > 0 ? $" WITH ({view.Options})" : "";
        string tablespace = view.Tablespace is null ? "" : $" TABLESPACE {view.Tablespace}";
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        // The definition was printed schema-qualified under this search path; read back under the same.
        await ExecuteAsync(connection, "SET search_path = pg_catalog", cancellationToken);
        await ExecuteAsync(connection, $"DROP MATERIALIZED VIEW IF EXISTS {schema}.{temporary}", cancellationToken);
        try
        {
            // Takes ACCESS SHARE on the new table: the application's writes go on while the query runs.
            await ExecuteAsync(connection, $"CREATE MATERIALIZED VIEW {schema}.{temporary}{with}{tablespace} AS {view.Definition} WITH {(view.Populated ? "" : "NO ")}DATA", cancellationToken);
            foreach (var index in view.Indexes)
            {
                await ExecuteAsync(connection, IndexOnTemporary(view, index, schema, temporary), cancellationToken);
            }

            await SwapAsync(connection, view, schema, temporary, cancellationToken);
        }
        catch (Exception e) when (e is PostgresException or RebuildException or OperationCanceledException)
        {
            // The swap's transaction is already rolled back; what remains of ours is the temporary view, if made.
            try
            {
                await ExecuteAsync(connection, $"DROP MATERIALIZED VIEW IF EXISTS {schema}.{temporary}", CancellationToken.None);
            }
            catch (NpgsqlException)
            {
                // Reported below: the note names the view, and osc cleanup is not needed for a view of ours.
            }

            throw;
        }
    }

    /// <summary>Drops the old view and renames the new one into place, under a short lock wait, retried.</summary>
    private async Task SwapAsync(NpgsqlConnection connection, View view, string schema, string temporary, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
            try
            {
                await ExecuteAsync(connection, $"SET LOCAL lock_timeout = {Math.Max(1, (int)lockTimeout.TotalMilliseconds)}", cancellationToken);
                await ExecuteAsync(connection, $"DROP MATERIALIZED VIEW {view.Name}", cancellationToken);
                await ExecuteAsync(connection, $"ALTER MATERIALIZED VIEW {schema}.{temporary} RENAME TO {view.Name[(schema.Length + 1)..]}", cancellationToken);
                foreach (var index in view.Indexes)
                {
                    await ExecuteAsync(connection, $"ALTER INDEX {schema}.{Temporary(index.Oid)} RENAME TO {index.QuotedName}", cancellationToken);
                }

                await ExecuteAsync(connection, $"ALTER MATERIALIZED VIEW {view.Name} OWNER TO {PostgresSql.Quote(view.Owner)}", cancellationToken);
                if (view.Comment is not null)
                {
                    await ExecuteAsync(connection, $"COMMENT ON MATERIALIZED VIEW {view.Name} IS '{view.Comment.Replace("'", "''", StringComparison.Ordinal)}'", cancellationToken);
                }

                if (view.Grants is not null)
                {
                    await ExecuteAsync(connection, view.Grants, cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
                return;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.LockNotAvailable && attempt < attempts)
            {
                await transaction.RollbackAsync(cancellationToken);
                int backoff = (int)Math.Min(5000, 100 * Math.Pow(2, Math.Min(attempt, 6)));
                await Task.Delay(TimeSpan.FromMilliseconds(backoff / 2 + Random.Shared.Next(backoff / 2 + 1)), cancellationToken);
            }
        }
    }

    /// <summary>
    /// The index's definition moved to the temporary view: pg_get_indexdef prints "CREATE [UNIQUE] INDEX name ON
    /// schema.view USING ...", and everything from USING on is kept.
    /// </summary>
    private static string IndexOnTemporary(View view, (uint Oid, string QuotedName, string Definition) index, string schema, string temporary)
    {
        string unique = index.Definition.StartsWith("CREATE UNIQUE INDEX ", StringComparison.Ordinal) ? "UNIQUE " : "";
        string prefix = $"CREATE {unique}INDEX {index.QuotedName} ON {view.Name} ";
        if (!index.Definition.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw new RebuildException($"its index {index.QuotedName} has a definition we cannot move: {index.Definition}");
        }

        return $"CREATE {unique}INDEX {Temporary(index.Oid)} ON {schema}.{temporary} {index.Definition[prefix.Length..]}";
    }

    private static string Temporary(uint oid) => string.Create(CultureInfo.InvariantCulture, $"osc_new_{oid}");

    /// <summary>Length of the schema part of a format('%I.%I') name: up to the first dot outside quotes.</summary>
    private static int SchemaLength(string qualified)
    {
        bool quoted = false;
        for (int i = 0; i < qualified.Length; i++)
        {
            if (qualified[i] == '"')
            {
                quoted = !quoted;
            }
            else if (qualified[i] == '.' && !quoted)
            {
                return i;
            }
        }

        throw new ArgumentException($"not schema-qualified: {qualified}", nameof(qualified));
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private sealed class RebuildException(string message) : Exception(message);
}
