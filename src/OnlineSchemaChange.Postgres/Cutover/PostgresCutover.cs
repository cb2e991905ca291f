using System.Diagnostics;
using System.Globalization;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Migration;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Cutover;

/// <summary>
/// Swaps the shadow in for the original in one transaction. PostgreSQL's DDL is transactional, so no sentry is
/// needed: read the catalog once (to warm the session's caches), lock both tables SHARE UPDATE EXCLUSIVE (keeps
/// autovacuum off them without stopping anyone), catch the replay up, LOCK the original ACCESS EXCLUSIVE with a
/// short lock_timeout (a waiting lock queues every later query on the table behind it, so the wait
/// must be short) and read the WAL insert position in the same round trip, drain the replay to it, then rename
/// the original to &lt;t&gt;_osc_old and the shadow to &lt;t&gt;, and carry over what the new table must have and
/// LIKE does not copy: index and sequence names, sequence ownership and values, owner, grants, comment, row-level
/// security and its policies, storage options, replica identity, triggers, dependent views, and foreign keys in
/// both directions (added NOT VALID inside the swap, validated after it without blocking writes); materialized views
/// are rebuilt on the new table after the swap (<see cref="PostgresMaterializedViews"/>). Any failure rolls
/// the whole transaction back: the original is untouched. A lock or drain timeout is retried with backoff and jitter.
/// The result says how long the lock request waited and where the hold went (<see cref="CutoverResult.Steps"/>).
/// </summary>
public sealed class PostgresCutover(string connectionString, PostgresTableFacts facts, PostgresShadowTable shadow,
    Func<ReplicationPosition, CancellationToken, Task<PostgresDrainTrace>> drainTo, CutoverOptions options)
{
    /// <summary>With a drain that does not say where its time went.</summary>
    public PostgresCutover(string connectionString, PostgresTableFacts facts, PostgresShadowTable shadow,
        Func<ReplicationPosition, CancellationToken, Task> drainTo, CutoverOptions options)
        : this(connectionString, facts, shadow, async (position, ct) =>
        {
            await drainTo(position, ct);
            return PostgresDrainTrace.Untraced;
        }, options)
    {
    }

    private readonly List<string> notes = [];
    private readonly PostgresLockWatch lockWatch = new(connectionString, facts.Oid);
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

    /// <summary>
    /// The original's definition (<see cref="PostgresTableDefinition"/>) when the shadow was created from it: the swap
    /// refuses a table that no longer has it. Null checks nothing.
    /// </summary>
    public string? DefinitionAtStart { get; init; }

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
                Attempt done = await AttemptAsync(cancellationToken);
                await ValidateAsync(done.ToValidate, cancellationToken);
                // After the swap, so the lock is never held while a view's query runs.
                notes.AddRange(await new PostgresMaterializedViews(connectionString, options.LockTimeout, options.Attempts, Original, facts.Names)
                    .RebuildAsync(materializedViews, Old.ToString(), cancellationToken));
                return new CutoverResult(done.Held, attempt) { Notes = notes, LockWait = done.LockWait, Steps = done.Steps };
            }
            catch (LockAttemptException e)
            {
                lastFailure = e.Message;
                if (attempt < options.Attempts)
                {
                    await Task.Delay(LockRetry.Backoff(attempt), cancellationToken);
                }
            }
        }

        throw new OscException($"The cut-over did not succeed in {options.Attempts} attempts; last: {lastFailure}",
            "The original table is in place and serving, unchanged. End or wait out the blocking transaction (pg_stat_activity), then run the cut-over again.");
    }

    private async Task<Attempt> AttemptAsync(CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        int pid = connection.ProcessID;
        int lockMs = Math.Max(1, (int)options.LockTimeout.TotalMilliseconds);
        await using (NpgsqlTransaction warmUp = await connection.BeginTransactionAsync(cancellationToken))
        {
            // Read once and thrown away: what matters is that the server has the catalog cached when it reads it again under the lock.
            await ExecuteAsync(connection, "SET LOCAL search_path = pg_catalog; SET LOCAL plan_cache_mode = force_generic_plan", cancellationToken);
            await ReadCatalogAsync(connection, lockShadow: false, cancellationToken);
            await warmUp.CommitAsync(cancellationToken);
        }

        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Qualified definitions (views, constraints, triggers) come out schema-qualified under an empty search path.
        await ExecuteAsync(connection, $"SET LOCAL lock_timeout = {lockMs}; SET LOCAL search_path = pg_catalog; SET LOCAL plan_cache_mode = force_generic_plan", cancellationToken);

        // First the lock that keeps (auto)vacuum off both tables: it lets reads, writes and the replay go on, so
        // waiting for a running autovacuum to be cancelled (deadlock_timeout, 1 s by default) stalls no one. Asked for
        // under the ACCESS EXCLUSIVE one instead, that wait was part of the hold (the shadow, freshly filled, is
        // vacuumed soon after the copy). Taken before the catch-up, so only one round trip separates its end from
        // the ACCESS EXCLUSIVE request.
        await LockAsync($"LOCK TABLE {PostgresSql.Quote(shadow.Table)}, {PostgresSql.Quote(Original)} IN SHARE UPDATE EXCLUSIVE MODE");
        // Unlocked, so that under the lock only what was committed since is left to drain; without it the lock was
        // held for however far the replay happened to be behind (a second and more under load).
        await CatchUpBeforeLock.RunAsync(async ct => new PostgresLsnPosition(
                await ScalarAsync<NpgsqlTypes.NpgsqlLogSequenceNumber>(connection, $"SELECT {PostgresReplay.CurrentPositionSql}", ct)),
            drainTo, options.DrainTimeout, cancellationToken);
        long lockRequested = Stopwatch.GetTimestamp();
        // The WAL position read in the same round trip as the lock is granted: it bounds every change to the original.
        NpgsqlTypes.NpgsqlLogSequenceNumber lockedAt = await LockAsync($"LOCK TABLE {PostgresSql.Quote(Original)} IN ACCESS EXCLUSIVE MODE; SELECT {PostgresReplay.CurrentPositionSql}");

        var held = new CutoverTimeline();
        TimeSpan lockWait = Stopwatch.GetElapsedTime(lockRequested, held.Start);
        var lsn = new PostgresLsnPosition(lockedAt);
        using (var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            drain.CancelAfter(options.DrainTimeout);
            try
            {
                held.MarkDrain(await drainTo(lsn, drain.Token));
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new LockAttemptException($"the replay did not reach {lsn} within {options.DrainTimeout.TotalSeconds:0.#} s");
            }
        }

        IReadOnlyList<ForeignKey> toValidate;
        try
        {
            toValidate = await SwapAsync(connection, held, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            held.Mark("commit");
            Swapped = true;
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.DeadlockDetected)
        {
            throw new LockAttemptException($"a table the swap touches stayed locked for more than {lockMs} ms: {e.MessageText}");
        }
        catch (PostgresException e)
        {
            throw new OscException($"The swap failed and was rolled back, the original is untouched: {e.MessageText} (SQLSTATE {e.SqlState}).",
                "The new table definition does not fit something that depends on the table (a view, a foreign key, a policy); adjust it and run again.", e);
        }

        return new Attempt(held.Elapsed, lockWait, held.Steps, toValidate);

        // A lock request, watched: when it times out, the failure names who held it up.
        async Task<NpgsqlTypes.NpgsqlLogSequenceNumber> LockAsync(string sql)
        {
            using var watching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            Task<string?> blockers = lockWatch.WatchBlockersAsync(pid, lockMs, watching.Token);
            try
            {
                return await ScalarAsync<NpgsqlTypes.NpgsqlLogSequenceNumber>(connection, sql, cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.DeadlockDetected)
            {
                await watching.CancelAsync();
                // The watch may not have looked in time on a busy server: then ask who holds the table now.
                string? who = await blockers ?? await lockWatch.HoldersAsync(pid, cancellationToken);
                throw new LockAttemptException((e.SqlState == PostgresErrorCodes.DeadlockDetected ? $"deadlocked while locking {Original}" : $"could not lock {Original} within {lockMs} ms")
                                                  + (who is null ? "" : $"; blocked by {who}"));
            }
            finally
            {
                await watching.CancelAsync();
                await blockers;
            }
        }
    }

    /// <summary>
    /// What the swap needs from the catalog, read in one round trip: under the lock for the swap itself (definitions
    /// as of the lock, printed before the renames, which would make them name the old table), and once before it on
    /// the same connection so that the server's per-session catalog caches are warm (read cold, the same queries
    /// took 50-190 ms, mostly planning, of which the warm reads under the lock take a few).
    /// </summary>
    private async Task<SwapCatalog> ReadCatalogAsync(NpgsqlConnection c, bool lockShadow, CancellationToken ct)
    {
        string shadowName = PostgresSql.Quote(shadow.Table);
        string original = PostgresSql.Quote(Original);
        uint oid = facts.Oid;
        // Names an index of the new table may take: those the shadow's indexes keep, and those built from the table's name.
        string[] kept = shadow.IndexNames.Values.Distinct(StringComparer.Ordinal).ToArray();
        await using var batch = new NpgsqlBatch(c);
        if (lockShadow)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"LOCK TABLE {shadowName} IN ACCESS EXCLUSIVE MODE"));
        }

        Add("""
            SELECT DISTINCT v.oid, format('%I.%I', n.nspname, v.relname), pg_get_viewdef(v.oid), coalesce(array_to_string(v.reloptions, ', '), ''), v.relkind,
                   pg_get_userbyid(v.relowner), obj_description(v.oid, 'pg_class'),
                   (SELECT string_agg(format('GRANT %s ON %I.%I TO %s%s', a.privilege_type, n.nspname, v.relname,
                                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                                             CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '; ')
                    FROM aclexplode(v.relacl) a)
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND v.oid <> $1
            ORDER BY v.oid
            """, oid);
        Add("""
            SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid), convalidated, conrelid = $1
            FROM pg_constraint WHERE contype = 'f' AND (confrelid = $1 OR conrelid = $1) ORDER BY oid
            """, oid);
        Add("SELECT tgname, pg_get_triggerdef(oid), tgenabled FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY oid", oid);
        Add("""
            SELECT p.polname, p.polpermissive, p.polcmd,
                   (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ') FROM unnest(p.polroles) r),
                   pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
            FROM pg_policy p WHERE p.polrelid = $1 ORDER BY p.oid
            """, oid);
        Add("""
            SELECT pg_get_userbyid(relowner), obj_description(oid, 'pg_class'), relrowsecurity, relforcerowsecurity, relreplident,
                   (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 AND i.indisreplident),
                   coalesce(reloptions, '{}'), (SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = $2::regclass), current_user
            FROM pg_class WHERE oid = $1
            """, oid, shadowName);
        Add("""
            SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type, a.is_grantable
            FROM pg_class t CROSS JOIN LATERAL aclexplode(t.relacl) a WHERE t.oid = $1
            """, oid);
        Add("""
            SELECT at.attname, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type, a.is_grantable
            FROM pg_attribute at CROSS JOIN LATERAL aclexplode(at.attacl) a WHERE at.attrelid = $1 AND at.attnum > 0 AND NOT at.attisdropped
            """, oid);
        Add("SELECT indexrelid, indexrelid::regclass::text FROM pg_index WHERE indrelid = $1", oid);
        // Each column's sequence, with its name, oid and schema: the statements that carry it over are written
        // before the renames, and must name it as the renames leave it.
        Add("""
            SELECT a.attname, s.seq, a.attidentity <> '', q.relname, q.oid, n.nspname
            FROM pg_attribute a CROSS JOIN LATERAL (SELECT pg_get_serial_sequence($2, a.attname) AS seq) s
                 JOIN pg_class q ON q.oid = s.seq::regclass JOIN pg_namespace n ON n.oid = q.relnamespace
            WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND s.seq IS NOT NULL
            """, oid, original);
        Add("""
            SELECT a.attname, s.seq, n.nspname
            FROM pg_attribute a CROSS JOIN LATERAL (SELECT pg_get_serial_sequence($1, a.attname) AS seq) s
                 JOIN pg_class q ON q.oid = s.seq::regclass JOIN pg_namespace n ON n.oid = q.relnamespace
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND s.seq IS NOT NULL
            """, shadowName);
        Add("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass", shadowName);
        Add("""
            SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND (c.relname = ANY($2) OR starts_with(c.relname, $3))
            """, Original.Schema!, kept, Original.Name);

        Add(PostgresTableDefinition.Sql, oid);

        // Prepared, and planned once for any parameters (the transactions set plan_cache_mode): under the lock
        // the server then neither parses nor plans, as the warm-up did both.
        await batch.PrepareAsync(ct);
        var sets = new List<List<object?[]>>();
        await using (NpgsqlDataReader reader = await batch.ExecuteReaderAsync(ct))
        {
            do
            {
                var rows = new List<object?[]>();
                while (await reader.ReadAsync(ct))
                {
                    var row = new object?[reader.FieldCount];
                    for (int i = 0; i < row.Length; i++)
                    {
                        row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
                    }

                    rows.Add(row);
                }

                sets.Add(rows);
            }
            while (await reader.NextResultAsync(ct));
        }

        // A LOCK returns no rows and has no result of its own.
        if (sets.Count != 13)
        {
            throw new InvalidOperationException($"The swap's catalog read returned {sets.Count} results, not 13.");
        }

        EnsureUnchanged((string)sets[12][0][0]!);

        var oldIndexOids = sets[7].Select(r => (uint)r[0]!).ToHashSet();
        return new SwapCatalog(
            Views: sets[0],
            ForeignKeys: sets[1].Select(r => new ForeignKey((string)r[0]!, (string)r[1]!, (string)r[2]!, (bool)r[3]!, (bool)r[4]!)).ToList(),
            Triggers: sets[2],
            Policies: sets[3],
            Table: sets[4][0],
            Grants: sets[5],
            ColumnGrants: sets[6],
            OldIndexes: sets[7],
            Sequences: sets[8],
            ShadowSequences: sets[9].ToDictionary(r => (string)r[0]!, r => (Name: (string)r[1]!, Schema: (string)r[2]!), StringComparer.Ordinal),
            NewIndexes: sets[10].Select(r => (string)r[0]!).ToList(),
            // What stays once the old table's indexes have stepped aside.
            Taken: sets[11].Where(r => !oldIndexOids.Contains((uint)r[1]!)).Select(r => (string)r[0]!).ToHashSet(StringComparer.Ordinal),
            MaterializedViews: sets[0].Any(v => (char)v[4]! == 'm') ? await PostgresMaterializedViews.CaptureAsync(c, facts.Oid, ct) : []);

        void Add(string sql, params object[] args)
        {
            var command = new NpgsqlBatchCommand(sql);
            foreach (object arg in args)
            {
                command.Parameters.Add(arg is uint id ? new NpgsqlParameter { Value = id, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid } : new NpgsqlParameter { Value = arg });
            }

            batch.BatchCommands.Add(command);
        }
    }

    private void EnsureUnchanged(string definition)
    {
        if (DefinitionAtStart is not null && definition != DefinitionAtStart)
        {
            // The three parts, in PostgresTableDefinition's order: say which changed, and how.
            string[] then = DefinitionAtStart.Split('\n'), now = definition.Split('\n');
            string[] parts = ["columns", "indexes", "constraints"];
            string changed = string.Join("; ", Enumerable.Range(0, parts.Length)
                .Where(i => then.ElementAtOrDefault(i) != now.ElementAtOrDefault(i))
                .Select(i => $"{parts[i]} were: {then.ElementAtOrDefault(i)}, now: {now.ElementAtOrDefault(i)}"));
            throw new TableChangedException(
                $"{Original} was altered during the migration, and the new table would lack the change: {changed}.",
                "Do not change the table while osc migrates it. Run the migration again on the table as it is now, with your change included in --alter " +
                "if it is still wanted; osc removed its shadow, bookkeeping table, slot and publication.");
        }
    }

    /// <summary>
    /// Everything inside the locked transaction: capture definitions, rename, carry over. The renames and carry-overs
    /// are written from the catalog read up front and sent in one round trip; only dependent views go one by one,
    /// since each may need a second way (see <see cref="RecreateViewAsync"/>).
    /// </summary>
    private async Task<IReadOnlyList<ForeignKey>> SwapAsync(NpgsqlConnection c, CutoverTimeline held, CancellationToken ct)
    {
        SwapCatalog catalog = await ReadCatalogAsync(c, lockShadow: true, ct);
        materializedViews = catalog.MaterializedViews;
        held.Mark("lock the shadow, read the catalog");

        (List<string> statements, List<ForeignKey> toValidate) = SwapStatements(catalog);
        await using (var batch = new NpgsqlBatch(c))
        {
            foreach (string statement in statements)
            {
                batch.BatchCommands.Add(new NpgsqlBatchCommand(statement));
            }

            if (AfterSwapLog is not null)
            {
                // Committed with the swap or not at all: a run stopped after it finds what it must still do. In the same
                // round trip, since the lock is held.
                batch.BatchCommands.Add(new PostgresAfterSwap(Statement, facts.Oid, materializedViews,
                    toValidate.Select(k => new PostgresAfterSwap.ForeignKey(k.Table, k.Name)).ToList()).SaveCommand(AfterSwapLog));
            }

            await batch.ExecuteNonQueryAsync(ct);
            held.Mark(string.Create(CultureInfo.InvariantCulture, $"renames and carry-overs ({batch.BatchCommands.Count} statements, one round trip)"));
        }

        int recreated = 0;
        foreach (var view in catalog.Views)
        {
            if ((char)view[4]! == 'm')
            {
                continue; // Rebuilt after the swap: PostgresMaterializedViews.
            }

            await RecreateViewAsync(c, view, ct);
            recreated++;
        }

        held.Mark(string.Create(CultureInfo.InvariantCulture, $"dependent views ({recreated})"));
        return toValidate;
    }

    /// <summary>The swap's statements, in order, from what the catalog said under the lock.</summary>
    private (List<string> Statements, List<ForeignKey> ToValidate) SwapStatements(SwapCatalog catalog)
    {
        var statements = new List<string>();
        string original = PostgresSql.Quote(Original);
        string old = PostgresSql.Quote(Old);
        string schema = PostgresSql.Quote(Original.Schema!);
        object?[] table = catalog.Table;

        // The index the replay needed and the ALTER did not ask for (PostgresShadowTable.EnsureReplayKeyAsync).
        if (catalog.NewIndexes.Contains(facts.Names.ReplayKey))
        {
            statements.Add($"DROP INDEX {schema}.{PostgresSql.Quote(facts.Names.ReplayKey)}");
        }

        statements.Add($"ALTER TABLE {original} RENAME TO {PostgresSql.Quote(Old.Name)}");
        statements.Add($"ALTER TABLE {PostgresSql.Quote(shadow.Table)} RENAME TO {PostgresSql.Quote(Original.Name)}");

        // Index (and index-backed constraint) names: the old table's step aside, the new table's take the original names.
        foreach (var index in catalog.OldIndexes)
        {
            statements.Add($"ALTER INDEX {index[1]} RENAME TO {PostgresSql.Quote("osc_old_" + Convert.ToString(index[0], CultureInfo.InvariantCulture))}");
        }

        var taken = catalog.Taken;
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (string name in catalog.NewIndexes)
        {
            string? target = shadow.IndexNames.TryGetValue(name, out string? kept) ? kept
                : name.StartsWith(facts.Names.Shadow + "_", StringComparison.Ordinal) ? facts.Table.Name + name[facts.Names.Shadow.Length..]
                : null;
            if (target is not null && used.Add(target) && !taken.Contains(target))
            {
                statements.Add($"ALTER INDEX {schema}.{PostgresSql.Quote(name)} RENAME TO {PostgresSql.Quote(target)}");
                taken.Remove(name);
                taken.Add(target);
            }
        }

        // Owner first: a sequence can only be owned by a column of a table with the same owner.
        string owner = (string)table[0]!;
        if (owner != (string)table[8]!)
        {
            statements.Add($"ALTER TABLE {original} OWNER TO {PostgresSql.Quote(owner)}");
        }

        foreach (var sequence in catalog.Sequences)
        {
            string column = (string)sequence[0]!;
            string oldSequence = (string)sequence[1]!;
            bool identity = (bool)sequence[2]!;
            string? target = shadow.Mapping.Pairs.FirstOrDefault(p => p.Source == column).Target;
            if (target is null)
            {
                continue;
            }

            string quotedTarget = PostgresSql.Quote(target);
            // The new column's own sequence (an identity's), as the new table's name would show it after the renames.
            (string Name, string Schema)? newSequence = catalog.ShadowSequences.TryGetValue(target, out var found) ? found : null;
            if (identity && newSequence is { } mine && mine.Name != oldSequence)
            {
                // Identity: the new table has its own sequence; it takes the old one's name and continues past it.
                string oldName = (string)sequence[3]!;
                string oldRenamed = PostgresSql.Quote(new TableName((string)sequence[5]!, "osc_old_" + Convert.ToString(sequence[4], CultureInfo.InvariantCulture)));
                string renamed = PostgresSql.Quote(new TableName(mine.Schema, oldName));
                statements.Add($"ALTER SEQUENCE {oldSequence} RENAME TO {PostgresSql.Quote("osc_old_" + Convert.ToString(sequence[4], CultureInfo.InvariantCulture))}");
                statements.Add($"ALTER SEQUENCE {mine.Name} RENAME TO {PostgresSql.Quote(oldName)}");
                statements.Add(
                    $"SELECT setval('{Escape(renamed)}', v) FROM (SELECT greatest((SELECT max({quotedTarget}) FROM {original}), " +
                    $"(SELECT CASE WHEN is_called THEN last_value END FROM {oldRenamed})) AS v) s WHERE v IS NOT NULL");
            }
            else if (!identity)
            {
                // Serial: the shadow's default already draws from the same sequence; it now belongs to the new column.
                statements.Add($"ALTER SEQUENCE {oldSequence} OWNED BY {original}.{quotedTarget}");
                statements.Add(
                    $"SELECT setval('{Escape(oldSequence)}', m) FROM (SELECT max({quotedTarget}) AS m FROM {original}) s, {oldSequence} q " +
                    "WHERE m IS NOT NULL AND (NOT q.is_called OR m > q.last_value)");
            }
        }

        foreach (var grant in catalog.Grants)
        {
            statements.Add($"GRANT {grant[1]} ON {original} TO {grant[0]}{((bool)grant[2]! ? " WITH GRANT OPTION" : "")}");
        }

        foreach (var grant in catalog.ColumnGrants)
        {
            string? target = shadow.Mapping.Pairs.FirstOrDefault(p => p.Source == (string)grant[0]!).Target;
            if (target is not null)
            {
                statements.Add($"GRANT {grant[2]} ({PostgresSql.Quote(target)}) ON {original} TO {grant[1]}{((bool)grant[3]! ? " WITH GRANT OPTION" : "")}");
            }
        }

        if (table[1] is string comment)
        {
            statements.Add($"COMMENT ON TABLE {original} IS '{Escape(comment)}'");
        }

        if ((bool)table[2]!)
        {
            statements.Add($"ALTER TABLE {original} ENABLE ROW LEVEL SECURITY");
        }

        if ((bool)table[3]!)
        {
            statements.Add($"ALTER TABLE {original} FORCE ROW LEVEL SECURITY");
        }

        foreach (var policy in catalog.Policies)
        {
            string command = (char)policy[2]! switch { 'r' => "SELECT", 'a' => "INSERT", 'w' => "UPDATE", 'd' => "DELETE", _ => "ALL" };
            statements.Add(
                $"CREATE POLICY {PostgresSql.Quote((string)policy[0]!)} ON {original} AS {((bool)policy[1]! ? "PERMISSIVE" : "RESTRICTIVE")} FOR {command} TO {policy[3]}" +
                (policy[4] is string qual ? $" USING ({qual})" : "") + (policy[5] is string check ? $" WITH CHECK ({check})" : ""));
        }

        var shadowOptions = ((string[])table[7]!).Select(o => o.Split('=')[0]).ToHashSet(StringComparer.Ordinal);
        if (shadow.AutovacuumPaused)
        {
            // Ours, not the ALTER's: autovacuum comes back on, or as the original had it.
            statements.Add($"ALTER TABLE {original} RESET (autovacuum_enabled)");
            shadowOptions.Remove("autovacuum_enabled");
        }

        string[] carried = ((string[])table[6]!).Where(o => !shadowOptions.Contains(o.Split('=')[0])).ToArray();
        if (carried.Length > 0)
        {
            statements.Add($"ALTER TABLE {original} SET ({string.Join(", ", carried)})");
        }

        switch ((char)table[4]!)
        {
            case 'f':
                statements.Add($"ALTER TABLE {original} REPLICA IDENTITY FULL");
                break;
            case 'i' when table[5] is string identityIndex && taken.Contains(identityIndex):
                statements.Add($"ALTER TABLE {original} REPLICA IDENTITY USING INDEX {PostgresSql.Quote(identityIndex)}");
                break;
        }

        foreach (var trigger in catalog.Triggers)
        {
            statements.Add((string)trigger[1]!);
            string? state = (char)trigger[2]! switch { 'D' => "DISABLE TRIGGER", 'R' => "ENABLE REPLICA TRIGGER", 'A' => "ENABLE ALWAYS TRIGGER", _ => null };
            if (state is not null)
            {
                statements.Add($"ALTER TABLE {original} {state} {PostgresSql.Quote((string)trigger[0]!)}");
            }
        }

        // Foreign keys: the old table lets go of its own (it must not hold back deletes of parent rows) and the
        // children's point at the new table. NOT VALID checks new writes only, so adding them does not scan.
        var toValidate = new List<ForeignKey>();
        foreach (ForeignKey key in catalog.ForeignKeys)
        {
            string child = key.Outgoing ? original : key.Table;
            statements.Add($"ALTER TABLE {(key.Outgoing ? old : key.Table)} DROP CONSTRAINT {PostgresSql.Quote(key.Name)}");
            string definition = key.Definition.EndsWith(" NOT VALID", StringComparison.Ordinal) ? key.Definition : key.Definition + " NOT VALID";
            statements.Add($"ALTER TABLE {child} ADD CONSTRAINT {PostgresSql.Quote(key.Name)} {definition}");
            if (key.Validated)
            {
                toValidate.Add(key with { Table = child });
            }
        }

        return (statements, toValidate);
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

    private static string Escape(string text) => text.Replace("'", "''", StringComparison.Ordinal);

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

    /// <param name="Table">The table the constraint is on (qualified, quoted as regclass prints it).</param>
    /// <param name="Outgoing">The constraint is on the migrated table itself (it references a parent, or itself).</param>
    private sealed record ForeignKey(string Name, string Table, string Definition, bool Validated, bool Outgoing);

    private sealed record SwapCatalog(
        List<object?[]> Views, List<ForeignKey> ForeignKeys, List<object?[]> Triggers, List<object?[]> Policies, object?[] Table,
        List<object?[]> Grants, List<object?[]> ColumnGrants, List<object?[]> OldIndexes, List<object?[]> Sequences,
        Dictionary<string, (string Name, string Schema)> ShadowSequences, List<string> NewIndexes, HashSet<string> Taken,
        IReadOnlyList<PostgresMaterializedViews.View> MaterializedViews);

    private sealed record Attempt(TimeSpan Held, TimeSpan LockWait, IReadOnlyList<CutoverStep> Steps, IReadOnlyList<ForeignKey> ToValidate);
}
