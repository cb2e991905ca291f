using System.Diagnostics;
using System.Globalization;
using Npgsql;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
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
/// The temporary view is named <see cref="ShadowNames.RebuiltView"/> and marked as ours by a comment naming the table
/// (<see cref="Marker"/>), set in the transaction that creates it: a run killed mid-rebuild leaves either nothing or a
/// complete, marked view, which `osc cleanup` and `--resume` recognise and drop, and nothing unmarked is ever dropped.
/// </summary>
public sealed class PostgresMaterializedViews(string connectionString, TimeSpan lockTimeout, int attempts, TableName table, ShadowNames names)
{
    private const string MarkerPrefix = "osc: temporary rebuild of the materialized view ";

    /// <summary>One captured view; <see cref="Dependents"/> non-null means it is left alone.</summary>
    public sealed record View(uint Oid, string Name, string Definition, string Options, string? Tablespace, bool Populated, string Owner,
        string? Comment, string? Grants, IReadOnlyList<ViewIndex> Indexes, string? Dependents);

    /// <summary>One index of a captured view, its definition as pg_get_indexdef prints it.</summary>
    public sealed record ViewIndex(uint Oid, string QuotedName, string Definition);

    /// <summary>The comment that marks a temporary view as this table's rebuild; the original's comment replaces it at the swap.</summary>
    public static string Marker(string view, TableName table) => $"{MarkerPrefix}{view} on the table {PostgresSql.Quote(table)}";

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
            var indexes = new List<ViewIndex>();
            await using var command = new NpgsqlCommand(
                "SELECT indexrelid, (SELECT quote_ident(relname) FROM pg_class WHERE oid = indexrelid), pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1 ORDER BY indexrelid",
                connection);
            command.Parameters.Add(new NpgsqlParameter { Value = views[i].Oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                indexes.Add(new ViewIndex((uint)reader.GetValue(0), reader.GetString(1), reader.GetString(2)));
            }

            views[i] = views[i] with { Indexes = indexes };
        }

        return views;
    }

    /// <summary>Rebuilds each view on the new table; returns one note per view saying what happened.</summary>
    public async Task<IReadOnlyList<string>> RebuildAsync(IReadOnlyList<View> views, string oldTable, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(views);
        var notes = new List<string>();
        foreach (View view in views)
        {
            notes.Add(await RebuildOneAsync(view, oldTable, cancellationToken));
        }

        return notes;
    }

    /// <summary>
    /// Finishes the rebuild an interrupted run recorded: drops the temporary views it left, then rebuilds each
    /// recorded view that is still the one captured at the swap (same oid: it still reads the old table). A view
    /// with another oid was already swapped in (or replaced by the operator), one that is gone was dropped since.
    /// </summary>
    public async Task<IReadOnlyList<string>> ResumeAsync(IReadOnlyList<View> views, string oldTable, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(views);
        var notes = new List<string>();
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(cancellationToken);
            foreach (string dropped in await DropTemporaryAsync(connection, table, names, cancellationToken))
            {
                notes.Add($"Dropped {dropped}, the interrupted run's unfinished rebuild.");
            }
        }

        foreach (View view in views)
        {
            notes.Add(await StateAsync(view, cancellationToken) switch
            {
                ViewState.Captured => await RebuildOneAsync(view, oldTable, cancellationToken),
                ViewState.Replaced => $"The materialized view {view.Name} had already been rebuilt on the new table.",
                _ => $"The materialized view {view.Name} no longer exists; nothing to rebuild.",
            });
        }

        return notes;
    }

    /// <summary>The recorded views that still read the old table: the same oid as at the swap.</summary>
    public static async Task<IReadOnlyList<View>> PendingAsync(NpgsqlConnection connection, IReadOnlyList<View> views, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(views);
        var pending = new List<View>();
        foreach (View view in views)
        {
            if (await StateAsync(connection, view, cancellationToken) == ViewState.Captured)
            {
                pending.Add(view);
            }
        }

        return pending;
    }

    /// <summary>
    /// Drops every temporary view of ours for <paramref name="table"/>, in any schema: named as
    /// <see cref="ShadowNames.RebuiltView"/> names them and marked with <see cref="Marker"/> for this table. Returns their names.
    /// </summary>
    public static async Task<IReadOnlyList<string>> DropTemporaryAsync(NpgsqlConnection connection, TableName table, ShadowNames names, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(names);
        string suffix = Marker("", table)[MarkerPrefix.Length..];
        var ours = new List<string>();
        await using (var command = new NpgsqlCommand(
            """
            SELECT format('%I.%I', n.nspname, c.relname), c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'm' AND starts_with(obj_description(c.oid, 'pg_class'), $1) AND right(obj_description(c.oid, 'pg_class'), length($2)) = $2
            ORDER BY c.oid
            """, connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = MarkerPrefix });
            command.Parameters.Add(new NpgsqlParameter { Value = suffix });
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                if (IsTemporaryName(reader.GetString(1), names))
                {
                    ours.Add(reader.GetString(0));
                }
            }
        }

        foreach (string view in ours)
        {
            await ExecuteAsync(connection, $"DROP MATERIALIZED VIEW IF EXISTS {view}", cancellationToken);
        }

        return ours;
    }

    /// <summary>
    /// What an operator runs to move a view still reading the old table onto the new one: drop it and create it again
    /// from the definition captured at the swap (which names the table as it is called now), with its indexes, owner,
    /// comment and grants. Readers wait on the view while its query runs; a resume does the same without that wait.
    /// </summary>
    public static string RecreateStatements(View view)
    {
        ArgumentNullException.ThrowIfNull(view);
        var statements = new List<string>
        {
            "BEGIN",
            $"DROP MATERIALIZED VIEW {view.Name}",
            $"CREATE MATERIALIZED VIEW {view.Name}{With(view)} AS {view.Definition} WITH {(view.Populated ? "" : "NO ")}DATA",
        };
        statements.AddRange(view.Indexes.Select(i => i.Definition));
        statements.Add($"ALTER MATERIALIZED VIEW {view.Name} OWNER TO {PostgresSql.Quote(view.Owner)}");
        if (view.Comment is not null)
        {
            statements.Add($"COMMENT ON MATERIALIZED VIEW {view.Name} IS {Literal(view.Comment)}");
        }

        if (view.Grants is not null)
        {
            statements.Add(view.Grants);
        }

        statements.Add("COMMIT;");
        return string.Join("; ", statements);
    }

    private async Task<string> RebuildOneAsync(View view, string oldTable, CancellationToken cancellationToken)
    {
        if (view.Dependents is not null)
        {
            return $"The materialized view {view.Name} still reads {oldTable}: {view.Dependents} depend on it, so it was not rebuilt. "
                   + $"Recreate it (and them) on the new table before dropping {oldTable}.";
        }

        try
        {
            var clock = Stopwatch.StartNew();
            await RebuildAsync(view, cancellationToken);
            return string.Create(CultureInfo.InvariantCulture,
                $"The materialized view {view.Name} was rebuilt on the new table ({clock.Elapsed.TotalSeconds:0.0} s){(view.Populated ? ", its content as of now, as after a REFRESH" : ", unpopulated as it was")}.");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return $"The materialized view {view.Name} still reads {oldTable}: its rebuild on the new table was interrupted. "
                   + $"Recreate it on the new table before dropping {oldTable}: {RecreateStatements(view)}";
        }
        catch (Exception e) when (e is PostgresException or RebuildException)
        {
            string reason = e is PostgresException p ? $"{p.MessageText} (SQLSTATE {p.SqlState})" : e.Message;
            return $"The materialized view {view.Name} still reads {oldTable}: rebuilding it on the new table failed: {reason}. "
                   + $"Adjust its query to the new table and recreate it before dropping {oldTable}.";
        }
    }

    private async Task RebuildAsync(View view, CancellationToken cancellationToken)
    {
        string schema = view.Name[..SchemaLength(view.Name)];
        string temporary = $"{schema}.{PostgresSql.Quote(names.RebuiltView(view.Oid))}";
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        // The definition was printed schema-qualified under this search path; read back under the same.
        await ExecuteAsync(connection, "SET search_path = pg_catalog", cancellationToken);
        // A leftover of an earlier run is dropped only if marked ours; anything else under the name makes CREATE fail.
        await DropTemporaryAsync(connection, table, names, cancellationToken);
        try
        {
            // One transaction: a kill leaves no view at all, or a complete one that carries the marker. It takes
            // ACCESS SHARE on the new table: the application's writes go on while the query runs.
            await using (NpgsqlTransaction build = await connection.BeginTransactionAsync(cancellationToken))
            {
                await ExecuteAsync(connection, $"CREATE MATERIALIZED VIEW {temporary}{With(view)} AS {view.Definition} WITH {(view.Populated ? "" : "NO ")}DATA", cancellationToken);
                await ExecuteAsync(connection, $"COMMENT ON MATERIALIZED VIEW {temporary} IS {Literal(Marker(view.Name, table))}", cancellationToken);
                foreach (ViewIndex index in view.Indexes)
                {
                    await ExecuteAsync(connection, IndexOnTemporary(view, index, temporary), cancellationToken);
                }

                await build.CommitAsync(cancellationToken);
            }

            await SwapAsync(connection, view, schema, temporary, cancellationToken);
        }
        catch (Exception e) when (e is PostgresException or RebuildException or OperationCanceledException)
        {
            // The transactions are rolled back; what remains of ours is the temporary view, if it was committed.
            try
            {
                await DropTemporaryAsync(connection, table, names, CancellationToken.None);
            }
            catch (NpgsqlException)
            {
                // It carries the marker: osc cleanup (or a resume) recognises and drops it.
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
                await ExecuteAsync(connection, $"ALTER MATERIALIZED VIEW {temporary} RENAME TO {view.Name[(schema.Length + 1)..]}", cancellationToken);
                foreach (ViewIndex index in view.Indexes)
                {
                    await ExecuteAsync(connection, $"ALTER INDEX {schema}.{PostgresSql.Quote(names.RebuiltView(index.Oid, index: true))} RENAME TO {index.QuotedName}", cancellationToken);
                }

                await ExecuteAsync(connection, $"ALTER MATERIALIZED VIEW {view.Name} OWNER TO {PostgresSql.Quote(view.Owner)}", cancellationToken);
                // The marker goes with the temporary name: the view is the original's now, comment included.
                await ExecuteAsync(connection, $"COMMENT ON MATERIALIZED VIEW {view.Name} IS {(view.Comment is null ? "NULL" : Literal(view.Comment))}", cancellationToken);
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

    private enum ViewState
    {
        Captured,
        Replaced,
        Gone,
    }

    /// <summary>Whether the view named as recorded is still the captured one (its oid), another one, or gone.</summary>
    private async Task<ViewState> StateAsync(View view, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        return await StateAsync(connection, view, cancellationToken);
    }

    private static async Task<ViewState> StateAsync(NpgsqlConnection connection, View view, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT to_regclass($1)::oid", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = view.Name });
        object? oid = await command.ExecuteScalarAsync(cancellationToken);
        return oid is null or DBNull ? ViewState.Gone : (uint)oid == view.Oid ? ViewState.Captured : ViewState.Replaced;
    }

    /// <summary>
    /// The index's definition moved to the temporary view: pg_get_indexdef prints "CREATE [UNIQUE] INDEX name ON
    /// schema.view USING ...", and everything from USING on is kept.
    /// </summary>
    private string IndexOnTemporary(View view, ViewIndex index, string temporary)
    {
        string unique = index.Definition.StartsWith("CREATE UNIQUE INDEX ", StringComparison.Ordinal) ? "UNIQUE " : "";
        string prefix = $"CREATE {unique}INDEX {index.QuotedName} ON {view.Name} ";
        if (!index.Definition.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw new RebuildException($"its index {index.QuotedName} has a definition we cannot move: {index.Definition}");
        }

        return $"CREATE {unique}INDEX {PostgresSql.Quote(names.RebuiltView(index.Oid, index: true))} ON {temporary} {index.Definition[prefix.Length..]}";
    }

    /// <summary>Whether <paramref name="name"/> is one <see cref="ShadowNames.RebuiltView"/> gives for this table.</summary>
    private static bool IsTemporaryName(string name, ShadowNames names)
    {
        int at = name.LastIndexOf("_osc_mv", StringComparison.Ordinal);
        return at >= 0 && uint.TryParse(name.AsSpan(at + "_osc_mv".Length), NumberStyles.None, CultureInfo.InvariantCulture, out uint oid)
                       && name == names.RebuiltView(oid);
    }

    private static string With(View view) =>
        (view.Options.Length > 0 ? $" WITH ({view.Options})" : "") + (view.Tablespace is null ? "" : $" TABLESPACE {view.Tablespace}");

    private static string Literal(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";

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
