using System.Diagnostics;
using System.Globalization;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Migration;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Cutover;

/// <summary>
/// Swaps the shadow in for the original in one transaction. PostgreSQL's DDL is transactional, so no sentry is
/// needed: LOCK the original ACCESS EXCLUSIVE with a short lock_timeout (a waiting lock queues every later query on
/// the table behind it, so the wait must be short), read pg_current_wal_lsn(), drain the replay to it, then rename
/// the original to &lt;t&gt;_osc_old and the shadow to &lt;t&gt;, and carry over what the new table must have and
/// LIKE does not copy: index and sequence names, sequence ownership and values, owner, grants, comment, row-level
/// security and its policies, storage options, replica identity, triggers, dependent views, and foreign keys in
/// both directions (added NOT VALID inside the swap, validated after it without blocking writes); materialized views
/// are rebuilt on the new table after the swap (<see cref="PostgresMaterializedViews"/>). Any failure rolls
/// the whole transaction back: the original is untouched. A lock or drain timeout is retried with backoff and jitter.
/// </summary>
public sealed class PostgresCutover(string connectionString, PostgresTableFacts facts, PostgresShadowTable shadow,
    Func<ReplicationPosition, CancellationToken, Task> drainTo, CutoverOptions options)
{
    private readonly List<string> notes = [];
    private IReadOnlyList<PostgresMaterializedViews.View> materializedViews = [];

    private TableName Original => facts.Table;

    private TableName Old => facts.Table with { Name = facts.Names.Old };

    /// <summary>
    /// The bookkeeping table the swap records what is left after it in (<see cref="PostgresAfterSwap"/>), in its own
    /// transaction; null records nothing.
    /// </summary>
    public TableName? AfterSwapLog { get; init; }

    /// <summary>The ALTER, normalised as in the checkpoint, recorded with what is left after the swap.</summary>
    public string Statement { get; init; } = "";

    /// <summary>True once the swap's transaction committed: from then on a failure must not be treated as before the swap.</summary>
    public bool Swapped { get; private set; }

    /// <summary>What the swap could not carry over by itself and an operator should know (a constraint left NOT VALID).</summary>
    public IReadOnlyList<string> Notes => notes;

    public async Task<CutoverResult> RunAsync(CancellationToken cancellationToken)
    {
        // Fresh statistics before the swap, or the first queries on the new table are planned blind.
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(cancellationToken);
            // The copy deferred the plain indexes; the new table must never go live without them.
            await shadow.BuildDeferredIndexesAsync(connection, cancellationToken);
            await ExecuteAsync(connection, $"ANALYZE {PostgresSql.Quote(shadow.Table)}", cancellationToken);
        }

        string? lastFailure = null;
        for (int attempt = 1; attempt <= options.Attempts; attempt++)
        {
            try
            {
                (TimeSpan blocked, IReadOnlyList<ForeignKey> toValidate) = await AttemptAsync(cancellationToken);
                await ValidateAsync(toValidate, cancellationToken);
                // After the swap, so the lock is never held while a view's query runs.
                notes.AddRange(await new PostgresMaterializedViews(connectionString, options.LockTimeout, options.Attempts, Original, facts.Names)
                    .RebuildAsync(materializedViews, Old.ToString(), cancellationToken));
                return new CutoverResult(blocked, attempt) { Notes = notes };
            }
            catch (CutoverAttemptException e)
            {
                lastFailure = e.Message;
                if (attempt < options.Attempts)
                {
                    int backoff = (int)Math.Min(5000, 100 * Math.Pow(2, Math.Min(attempt, 6)));
                    await Task.Delay(TimeSpan.FromMilliseconds(backoff / 2 + Random.Shared.Next(backoff / 2 + 1)), cancellationToken);
                }
            }
        }

        throw new OscException($"The cut-over did not succeed in {options.Attempts} attempts; last: {lastFailure}",
            "The original table is in place and serving, unchanged. End or wait out the blocking transaction (pg_stat_activity), then run the cut-over again.");
    }

    private async Task<(TimeSpan Blocked, IReadOnlyList<ForeignKey> ToValidate)> AttemptAsync(CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        int pid = connection.ProcessID;
        // Catch up first, unlocked: under the lock only what was written since is left to drain. Without it the
        // lock would be held for however far the replay happened to be behind (a second and more under load). Bounded
        // like the drain under the lock; a replay that does not get there fails that one instead.
        using (var catchUp = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            catchUp.CancelAfter(options.DrainTimeout);
            try
            {
                await drainTo(new PostgresLsnPosition(await ScalarAsync<NpgsqlTypes.NpgsqlLogSequenceNumber>(connection, "SELECT pg_current_wal_lsn()", cancellationToken)), catchUp.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }
        }

        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        int lockMs = Math.Max(1, (int)options.LockTimeout.TotalMilliseconds);
        // Qualified definitions (views, constraints, triggers) come out schema-qualified under an empty search path.
        await ExecuteAsync(connection, $"SET LOCAL lock_timeout = {lockMs}; SET LOCAL search_path = pg_catalog", cancellationToken);

        using (var watching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            Task<string?> blockers = WatchBlockersAsync(pid, watching.Token);
            try
            {
                await ExecuteAsync(connection, $"LOCK TABLE {PostgresSql.Quote(Original)} IN ACCESS EXCLUSIVE MODE", cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.LockNotAvailable)
            {
                await watching.CancelAsync();
                string? who = await blockers;
                throw new CutoverAttemptException($"could not lock {Original} within {lockMs} ms" + (who is null ? "" : $"; blocked by {who}"));
            }
            finally
            {
                await watching.CancelAsync();
                await blockers;
            }
        }

        var held = Stopwatch.StartNew();
        var lsn = new PostgresLsnPosition(await ScalarAsync<NpgsqlTypes.NpgsqlLogSequenceNumber>(connection, "SELECT pg_current_wal_lsn()", cancellationToken));
        using (var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            drain.CancelAfter(options.DrainTimeout);
            try
            {
                await drainTo(lsn, drain.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new CutoverAttemptException($"the replay did not reach {lsn} within {options.DrainTimeout.TotalSeconds:0.#} s");
            }
        }

        IReadOnlyList<ForeignKey> toValidate;
        try
        {
            await ExecuteAsync(connection, $"LOCK TABLE {PostgresSql.Quote(shadow.Table)} IN ACCESS EXCLUSIVE MODE", cancellationToken);
            toValidate = await SwapAsync(connection, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            Swapped = true;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.LockNotAvailable)
        {
            throw new CutoverAttemptException($"a table the swap touches stayed locked for more than {lockMs} ms: {e.MessageText}");
        }
        catch (PostgresException e)
        {
            throw new OscException($"The swap failed and was rolled back, the original is untouched: {e.MessageText} (SQLSTATE {e.SqlState}).",
                "The new table definition does not fit something that depends on the table (a view, a foreign key, a policy); adjust it and run again.", e);
        }

        return (held.Elapsed, toValidate);
    }

    /// <summary>Everything inside the locked transaction: capture definitions, rename, carry over.</summary>
    private async Task<IReadOnlyList<ForeignKey>> SwapAsync(NpgsqlConnection c, CancellationToken ct)
    {
        string original = PostgresSql.Quote(Original);
        string old = PostgresSql.Quote(Old);
        string schema = PostgresSql.Quote(Original.Schema!);
        uint shadowOid = await ScalarAsync<uint>(c, "SELECT $1::regclass::oid", ct, PostgresSql.Quote(shadow.Table));

        // Captured before the rename: afterwards they would print the old table's new name.
        var views = await RowsAsync(c,
            """
            SELECT DISTINCT v.oid, format('%I.%I', n.nspname, v.relname), pg_get_viewdef(v.oid), coalesce(array_to_string(v.reloptions, ', '), ''), v.relkind,
                   pg_get_userbyid(v.relowner), obj_description(v.oid, 'pg_class'),
                   (SELECT string_agg(format('GRANT %s ON %I.%I TO %s%s', a.privilege_type, n.nspname, v.relname,
                                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                                             CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '; ')
                    FROM aclexplode(v.relacl) a)
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND v.oid <> $1
            ORDER BY v.oid
            """, ct, facts.Oid);
        materializedViews = await PostgresMaterializedViews.CaptureAsync(c, facts.Oid, ct);
        var foreignKeys = (await RowsAsync(c,
            """
            SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid), convalidated, conrelid = $1
            FROM pg_constraint WHERE contype = 'f' AND (confrelid = $1 OR conrelid = $1) ORDER BY oid
            """, ct, facts.Oid)).Select(r => new ForeignKey((string)r[0]!, (string)r[1]!, (string)r[2]!, (bool)r[3]!, (bool)r[4]!)).ToList();
        var triggers = await RowsAsync(c, "SELECT tgname, pg_get_triggerdef(oid), tgenabled FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY oid", ct, facts.Oid);
        var policies = await RowsAsync(c,
            """
            SELECT p.polname, p.polpermissive, p.polcmd,
                   (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ') FROM unnest(p.polroles) r),
                   pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
            FROM pg_policy p WHERE p.polrelid = $1 ORDER BY p.oid
            """, ct, facts.Oid);
        var table = (await RowsAsync(c,
            """
            SELECT pg_get_userbyid(relowner), obj_description(oid, 'pg_class'), relrowsecurity, relforcerowsecurity, relreplident,
                   (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 AND i.indisreplident),
                   coalesce(reloptions, '{}'), (SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = $2), current_user
            FROM pg_class WHERE oid = $1
            """, ct, facts.Oid, shadowOid))[0];
        var grants = await RowsAsync(c,
            """
            SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type, a.is_grantable
            FROM pg_class t CROSS JOIN LATERAL aclexplode(t.relacl) a WHERE t.oid = $1
            """, ct, facts.Oid);
        var columnGrants = await RowsAsync(c,
            """
            SELECT at.attname, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type, a.is_grantable
            FROM pg_attribute at CROSS JOIN LATERAL aclexplode(at.attacl) a WHERE at.attrelid = $1 AND at.attnum > 0 AND NOT at.attisdropped
            """, ct, facts.Oid);
        var oldIndexes = await RowsAsync(c, "SELECT indexrelid, indexrelid::regclass::text FROM pg_index WHERE indrelid = $1", ct, facts.Oid);
        var sequences = await RowsAsync(c,
            """
            SELECT a.attname, pg_get_serial_sequence($2, a.attname), a.attidentity <> ''
            FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND pg_get_serial_sequence($2, a.attname) IS NOT NULL
            """, ct, facts.Oid, original);

        await ExecuteAsync(c, $"ALTER TABLE {original} RENAME TO {PostgresSql.Quote(Old.Name)}", ct);
        await ExecuteAsync(c, $"ALTER TABLE {PostgresSql.Quote(shadow.Table)} RENAME TO {PostgresSql.Quote(Original.Name)}", ct);

        // Index (and index-backed constraint) names: the old table's step aside, the new table's take the original names.
        foreach (var index in oldIndexes)
        {
            await ExecuteAsync(c, $"ALTER INDEX {index[1]} RENAME TO {PostgresSql.Quote("osc_old_" + Convert.ToString(index[0], CultureInfo.InvariantCulture))}", ct);
        }

        var newIndexes = (await RowsAsync(c, "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1", ct, shadowOid))
            .Select(r => (string)r[0]!).ToList();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (string name in newIndexes)
        {
            string? target = shadow.IndexNames.TryGetValue(name, out string? kept) ? kept
                : name.StartsWith(facts.Names.Shadow + "_", StringComparison.Ordinal) ? facts.Table.Name + name[facts.Names.Shadow.Length..]
                : null;
            if (target is not null && used.Add(target) && !await ExistsAsync(c, Original.Schema!, target, ct))
            {
                await ExecuteAsync(c, $"ALTER INDEX {schema}.{PostgresSql.Quote(name)} RENAME TO {PostgresSql.Quote(target)}", ct);
            }
        }

        // Owner first: a sequence can only be owned by a column of a table with the same owner.
        string owner = (string)table[0]!;
        if (owner != (string)table[8]!)
        {
            await ExecuteAsync(c, $"ALTER TABLE {original} OWNER TO {PostgresSql.Quote(owner)}", ct);
        }

        foreach (var sequence in sequences)
        {
            string column = (string)sequence[0]!;
            string oldSequence = (string)sequence[1]!;
            string? target = shadow.Mapping.Pairs.FirstOrDefault(p => p.Source == column).Target;
            if (target is null)
            {
                continue;
            }

            string quotedTarget = PostgresSql.Quote(target);
            string? newSequence = await ScalarAsync<string?>(c, "SELECT pg_get_serial_sequence($1, $2)", ct, original, target);
            if ((bool)sequence[2]! && newSequence is not null && newSequence != oldSequence)
            {
                // Identity: the new table has its own sequence; it takes the old one's name and continues past it.
                string oldName = await ScalarAsync<string>(c, "SELECT relname FROM pg_class WHERE oid = $1::regclass", ct, oldSequence);
                await ExecuteAsync(c, $"ALTER SEQUENCE {oldSequence} RENAME TO {PostgresSql.Quote("osc_old_" + await ScalarAsync<uint>(c, "SELECT $1::regclass::oid", ct, oldSequence))}", ct);
                await ExecuteAsync(c, $"ALTER SEQUENCE {newSequence} RENAME TO {PostgresSql.Quote(oldName)}", ct);
                newSequence = await ScalarAsync<string>(c, "SELECT pg_get_serial_sequence($1, $2)", ct, original, target);
                string oldRenamed = await ScalarAsync<string>(c, "SELECT pg_get_serial_sequence($1, $2)", ct, old, column);
                await ExecuteAsync(c,
                    $"SELECT setval('{Escape(newSequence)}', v) FROM (SELECT greatest((SELECT max({quotedTarget}) FROM {original}), " +
                    $"(SELECT CASE WHEN is_called THEN last_value END FROM {oldRenamed})) AS v) s WHERE v IS NOT NULL", ct);
            }
            else if (!(bool)sequence[2]!)
            {
                // Serial: the shadow's default already draws from the same sequence; it now belongs to the new column.
                await ExecuteAsync(c, $"ALTER SEQUENCE {oldSequence} OWNED BY {original}.{quotedTarget}", ct);
                await ExecuteAsync(c,
                    $"SELECT setval('{Escape(oldSequence)}', m) FROM (SELECT max({quotedTarget}) AS m FROM {original}) s, {oldSequence} q " +
                    "WHERE m IS NOT NULL AND (NOT q.is_called OR m > q.last_value)", ct);
            }
        }

        foreach (var grant in grants)
        {
            await ExecuteAsync(c, $"GRANT {grant[1]} ON {original} TO {grant[0]}{((bool)grant[2]! ? " WITH GRANT OPTION" : "")}", ct);
        }

        foreach (var grant in columnGrants)
        {
            string? target = shadow.Mapping.Pairs.FirstOrDefault(p => p.Source == (string)grant[0]!).Target;
            if (target is not null)
            {
                await ExecuteAsync(c, $"GRANT {grant[2]} ({PostgresSql.Quote(target)}) ON {original} TO {grant[1]}{((bool)grant[3]! ? " WITH GRANT OPTION" : "")}", ct);
            }
        }

        if (table[1] is string comment)
        {
            await ExecuteAsync(c, $"COMMENT ON TABLE {original} IS '{Escape(comment)}'", ct);
        }

        if ((bool)table[2]!)
        {
            await ExecuteAsync(c, $"ALTER TABLE {original} ENABLE ROW LEVEL SECURITY", ct);
        }

        if ((bool)table[3]!)
        {
            await ExecuteAsync(c, $"ALTER TABLE {original} FORCE ROW LEVEL SECURITY", ct);
        }

        foreach (var policy in policies)
        {
            string command = (char)policy[2]! switch { 'r' => "SELECT", 'a' => "INSERT", 'w' => "UPDATE", 'd' => "DELETE", _ => "ALL" };
            await ExecuteAsync(c,
                $"CREATE POLICY {PostgresSql.Quote((string)policy[0]!)} ON {original} AS {((bool)policy[1]! ? "PERMISSIVE" : "RESTRICTIVE")} FOR {command} TO {policy[3]}" +
                (policy[4] is string qual ? $" USING ({qual})" : "") + (policy[5] is string check ? $" WITH CHECK ({check})" : ""), ct);
        }

        var shadowOptions = ((string[])table[7]!).Select(o => o.Split('=')[0]).ToHashSet(StringComparer.Ordinal);
        string[] carried = ((string[])table[6]!).Where(o => !shadowOptions.Contains(o.Split('=')[0])).ToArray();
        if (carried.Length > 0)
        {
            await ExecuteAsync(c, $"ALTER TABLE {original} SET ({string.Join(", ", carried)})", ct);
        }

        switch ((char)table[4]!)
        {
            case 'f':
                await ExecuteAsync(c, $"ALTER TABLE {original} REPLICA IDENTITY FULL", ct);
                break;
            case 'i' when table[5] is string identityIndex && await ExistsAsync(c, Original.Schema!, identityIndex, ct):
                await ExecuteAsync(c, $"ALTER TABLE {original} REPLICA IDENTITY USING INDEX {PostgresSql.Quote(identityIndex)}", ct);
                break;
        }

        foreach (var trigger in triggers)
        {
            await ExecuteAsync(c, (string)trigger[1]!, ct);
            string? state = (char)trigger[2]! switch { 'D' => "DISABLE TRIGGER", 'R' => "ENABLE REPLICA TRIGGER", 'A' => "ENABLE ALWAYS TRIGGER", _ => null };
            if (state is not null)
            {
                await ExecuteAsync(c, $"ALTER TABLE {original} {state} {PostgresSql.Quote((string)trigger[0]!)}", ct);
            }
        }

        foreach (var view in views)
        {
            if ((char)view[4]! == 'm')
            {
                continue; // Rebuilt after the swap: PostgresMaterializedViews.
            }

            await RecreateViewAsync(c, view, ct);
        }

        // Foreign keys: the old table lets go of its own (it must not hold back deletes of parent rows) and the
        // children's point at the new table. NOT VALID checks new writes only, so adding them does not scan.
        var toValidate = new List<ForeignKey>();
        foreach (ForeignKey key in foreignKeys)
        {
            string child = key.Outgoing ? original : key.Table;
            await ExecuteAsync(c, $"ALTER TABLE {(key.Outgoing ? old : key.Table)} DROP CONSTRAINT {PostgresSql.Quote(key.Name)}", ct);
            string definition = key.Definition.EndsWith(" NOT VALID", StringComparison.Ordinal) ? key.Definition : key.Definition + " NOT VALID";
            await ExecuteAsync(c, $"ALTER TABLE {child} ADD CONSTRAINT {PostgresSql.Quote(key.Name)} {definition}", ct);
            if (key.Validated)
            {
                toValidate.Add(key with { Table = child });
            }
        }

        if (AfterSwapLog is not null)
        {
            // Committed with the swap or not at all: a run stopped after it finds what it must still do.
            await new PostgresAfterSwap(Statement, facts.Oid, materializedViews, toValidate.Select(k => new PostgresAfterSwap.ForeignKey(k.Table, k.Name)).ToList())
                .SaveAsync(c, AfterSwapLog, ct);
        }

        return toValidate;
    }

    /// <summary>
    /// Points a view at the new table. CREATE OR REPLACE keeps the view's oid, grants and the views built on it, but
    /// refuses when a column's type changed (int to bigint); then the view is dropped and created again with its
    /// owner, grants and comment, which fails (and rolls the swap back) only if other views are built on it.
    /// </summary>
    private static async Task RecreateViewAsync(NpgsqlConnection c, object?[] view, CancellationToken ct)
    {
        string name = (string)view[1]!;
        string with = (string)view[3]! is { Length: > 0 } viewOptions ? $" WITH ({viewOptions})" : "";
        string definition = ((string)view[2]!).TrimEnd(';', ' ', '\n');
        await ExecuteAsync(c, "SAVEPOINT osc_view", ct);
        try
        {
            await ExecuteAsync(c, $"CREATE OR REPLACE VIEW {name}{with} AS {definition}", ct);
            await ExecuteAsync(c, "RELEASE SAVEPOINT osc_view", ct);
            return;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidTableDefinition)
        {
            await ExecuteAsync(c, "ROLLBACK TO SAVEPOINT osc_view", ct);
        }

        await ExecuteAsync(c, $"DROP VIEW {name}", ct);
        await ExecuteAsync(c, $"CREATE VIEW {name}{with} AS {definition}", ct);
        await ExecuteAsync(c, $"ALTER VIEW {name} OWNER TO {PostgresSql.Quote((string)view[5]!)}", ct);
        if (view[6] is string comment)
        {
            await ExecuteAsync(c, $"COMMENT ON VIEW {name} IS '{Escape(comment)}'", ct);
        }

        if (view[7] is string grants)
        {
            await ExecuteAsync(c, grants, ct);
        }
    }

    private Task ValidateAsync(IReadOnlyList<ForeignKey> keys, CancellationToken cancellationToken) =>
        ValidateAsync(connectionString, options.LockTimeout, keys.Select(k => new PostgresAfterSwap.ForeignKey(k.Table, k.Name)).ToList(), notes, cancellationToken);

    /// <summary>
    /// VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE: writes go on while it scans. A key that fails stays enforced
    /// for new rows, NOT VALID, with a note giving the statement; a resume after the swap runs the same.
    /// </summary>
    public static async Task ValidateAsync(string connectionString, TimeSpan lockTimeout, IReadOnlyList<PostgresAfterSwap.ForeignKey> keys, List<string> notes,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(notes);
        if (keys.Count == 0)
        {
            return;
        }

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await ExecuteAsync(connection, $"SET lock_timeout = {Math.Max(1, (int)lockTimeout.TotalMilliseconds)}", cancellationToken);
        foreach (PostgresAfterSwap.ForeignKey key in keys)
        {
            try
            {
                // No command timeout: it scans the whole referencing table.
                await using var validate = new NpgsqlCommand(key.ValidateStatement, connection) { CommandTimeout = 0 };
                await validate.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException e)
            {
                notes.Add($"The foreign key {key.Name} on {key.Table} is in place but NOT VALID ({e.MessageText}); run: {key.ValidateStatement}");
            }
        }
    }

    /// <summary>While our LOCK waits, who holds it up: pg_blocking_pids with what those sessions run.</summary>
    private async Task<string?> WatchBlockersAsync(int pid, CancellationToken cancellationToken)
    {
        string? last = null;
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            while (!cancellationToken.IsCancellationRequested)
            {
                last = await ScalarAsync<string?>(connection,
                    """
                    SELECT string_agg(format('pid %s (%s, %s for %s s): %s', a.pid, a.usename, a.state,
                                             round(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::numeric, 1), left(a.query, 200)), '; ')
                    FROM unnest(pg_blocking_pids($1)) b(pid) JOIN pg_stat_activity a ON a.pid = b.pid
                    """, cancellationToken, pid) ?? last;
                await Task.Delay(25, cancellationToken);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or NpgsqlException)
        {
            // The watch is a courtesy for the error message; it never fails the attempt.
        }

        return last;
    }

    private static string Escape(string text) => text.Replace("'", "''", StringComparison.Ordinal);

    private static async Task<bool> ExistsAsync(NpgsqlConnection connection, string schema, string name, CancellationToken cancellationToken) =>
        await ScalarAsync<bool>(connection, "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)",
            cancellationToken, schema, name);

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 120 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] args)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (object arg in args)
        {
            command.Parameters.Add(arg is uint oid ? new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid } : new NpgsqlParameter { Value = arg });
        }

        object? value = await command.ExecuteScalarAsync(cancellationToken);
        return value is null or DBNull ? default! : (T)value;
    }

    private static async Task<List<object?[]>> RowsAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] args)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (object arg in args)
        {
            command.Parameters.Add(arg is uint oid ? new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid } : new NpgsqlParameter { Value = arg });
        }

        var rows = new List<object?[]>();
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var row = new object?[reader.FieldCount];
            for (int i = 0; i < row.Length; i++)
            {
                row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            rows.Add(row);
        }

        return rows;
    }

    /// <param name="Table">The table the constraint is on (qualified, quoted as regclass prints it).</param>
    /// <param name="Outgoing">The constraint is on the migrated table itself (it references a parent, or itself).</param>
    private sealed record ForeignKey(string Name, string Table, string Definition, bool Validated, bool Outgoing);

    private sealed class CutoverAttemptException(string message) : Exception(message);
}
