using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Migration;

namespace OnlineSchemaChange.Postgres.Plan;

/// <summary>
/// Asks PostgreSQL how it would run an ALTER: run it on an empty copy inside a transaction, then read what changed.
/// A new relfilenode means a rewrite, a higher scan count a validation scan, pg_locks the locks taken; then roll back.
/// The copy is a session temp table created before that transaction, so every lock mode the ALTER takes is visible
/// (none is hidden behind the copy's own creation lock) and the server drops it even if we are killed. An ALTER
/// that references another table (a foreign key) needs a permanent copy: it is created inside the same rolled-back
/// transaction, and a lock mode not newly visible there can only be the ACCESS EXCLUSIVE it already holds.
/// </summary>
public sealed class PostgresAlterPlanner(ConnectionTarget target) : IAlterPlanner
{
    public async Task<AlterPlan> PlanAsync(TableName table, string alter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        AlterStatement statement = AlterStatement.Parse(alter, table, SqlDialect.Postgres);

        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        var catalog = new PostgresCatalog(connection);
        string version = await catalog.ScalarAsync<string>("SHOW server_version", cancellationToken);
        string schema = table.Schema ?? await catalog.ScalarAsync<string>("SELECT current_schema()", cancellationToken);
        var qualified = new TableName(schema, table.Name);
        PostgresCatalog.RelationInfo relation = await catalog.RelationAsync(qualified, cancellationToken) ?? throw new OscException(
            $"Table {qualified} does not exist.", "Check the schema and table names; unquoted names are lower case in PostgreSQL.");
        if (relation.Kind is not ('r' or 'p'))
        {
            throw new OscException($"{qualified} is not a table (relkind '{relation.Kind}').", "Plan the ALTER of the table it reads from.");
        }

        IReadOnlyList<string> key = await catalog.PrimaryKeyAsync(relation.Oid, cancellationToken);
        (ServerFindings findings, IReadOnlyList<PostgresColumn> before, IReadOnlyList<PostgresColumn> after) =
            await TryOnCopyAsync(connection, catalog, statement, qualified, relation.Oid, cancellationToken);

        IReadOnlyList<ApplicationImpact> impacts = Impacts(statement, before, after);
        IReadOnlyList<PlanStep>? safeVariant = findings.Risk == ChangeRisk.Blocking && !findings.RewritesTable
            ? PostgresSafeVariant.TryBuild(statement, qualified)
            : null;
        OscException? noOnlineRebuild = await PostgresInspector.WhyNoOnlineRebuildAsync(catalog, qualified, relation, cancellationToken);
        PlanStrategy strategy = StrategyAdvisor.Decide(findings, impacts, safeVariant is not null, canRebuildOnline: noOnlineRebuild is null);
        var notes = new List<string>();
        if (relation.Kind == 'p')
        {
            notes.Add("This is a partitioned table: planned on a plain copy; the real ALTER recurses into every partition, each with its own lock.");
        }

        if (noOnlineRebuild is not null)
        {
            notes.Add($"osc alter does not rebuild this table: {noOnlineRebuild.Message} {noOnlineRebuild.Hint}");
        }

        if (findings.OtherTables.Any(o => o.BlocksWrites))
        {
            notes.Add("The ALTER also blocks writes to: " + string.Join(", ", findings.OtherTables.Where(o => o.BlocksWrites).Select(o => $"{o.Table} ({o.Lock})")) + ".");
        }

        if (statement.Concurrently)
        {
            notes.Add("A concurrent index build that fails leaves an INVALID index (pg_index.indisvalid = false): drop it before retrying.");
        }

        return new AlterPlan
        {
            Engine = "PostgreSQL",
            ServerVersion = version,
            Table = qualified.ToString(),
            Alter = statement.Source.Trim(),
            Size = relation.Size,
            Findings = findings,
            Impacts = impacts,
            Strategy = strategy,
            Steps = strategy switch
            {
                PlanStrategy.ExpandContract => ExpandContractSteps.For(impacts, qualified, key, PostgresExpandContractSql.Instance),
                PlanStrategy.RunSafeVariant => safeVariant!,
                PlanStrategy.OnlineRebuild =>
                [
                    new PlanStep("rebuild online", "Rebuild the table online: a shadow table, a chunked throttled copy, logical-replication replay and a lock-safe cut-over.")
                    {
                        Command = $"osc alter <connection> --table {qualified} --alter \"{string.Join(", ", statement.ChangeClauses.Select(c => c.Text)).Replace("\"", "\\\"", StringComparison.Ordinal)}\" --execute",
                    },
                ],
                PlanStrategy.MaintenanceWindow => [PlanStep.MaintenanceWindow(findings, $"SET lock_timeout = '2s';\n{NativeSql(statement, qualified)};")],
                _ =>
                [
                    new PlanStep("run natively",
                        "Run it with a short lock_timeout: a waiting ALTER queues every later query on the table behind it. If it times out (a long transaction holds the table), retry with backoff and jitter.",
                        $"SET lock_timeout = '2s';\n{NativeSql(statement, qualified)};"),
                ],
            },
            Notes = notes,

            // Not for a partitioned table or an inheritance parent: the ALTER recurses into tables the copy did not have.
            InstantStatement = findings.Risk == ChangeRisk.Instant && statement.Kind == AlterStatementKind.AlterTable && statement.ChangeClauses.Any()
                               && !statement.RenamesTable && relation.Kind == 'r' && noOnlineRebuild is null
                ? NativeSql(statement, qualified)
                : null,
            SafeSteps = strategy == PlanStrategy.RunSafeVariant && relation.Kind == 'r' && noOnlineRebuild is null
                ? PostgresSafeVariant.TryBuildSteps(statement, qualified)
                : null,
        };
    }

    public static string PlanCopyName(string table)
    {
        ArgumentNullException.ThrowIfNull(table);
        string name = "_osc_plan_" + table;
        return name.Length > 63 ? name[..63] : name;
    }

    private static string NativeSql(AlterStatement statement, TableName table) =>
        statement.Kind == AlterStatementKind.AlterTable && !statement.ChangeClauses.Any()
            ? $"ALTER TABLE {PostgresSql.Quote(table)} {statement.Clauses[^1].Text}"
            : statement.Kind == AlterStatementKind.CreateIndex && statement.Concurrently
                ? statement.RenderFor(PostgresSql.Quote(table), "CONCURRENTLY")
                : statement.RenderFor(PostgresSql.Quote(table));

    private static async Task<(ServerFindings, IReadOnlyList<PostgresColumn>, IReadOnlyList<PostgresColumn>)> TryOnCopyAsync(
        NpgsqlConnection connection, PostgresCatalog catalog, AlterStatement statement, TableName original, uint originalOid, CancellationToken cancellationToken)
    {
        // Temp tables cannot reference permanent ones nor change their logged status: those need a permanent copy.
        var tokens = SqlLexer.Tokenize(statement.Source, SqlDialect.Postgres);
        bool referencesOtherTable = tokens.Any(t => t.IsWord("REFERENCES") || t.IsWord("LOGGED") || t.IsWord("UNLOGGED"));
        string copyName = PlanCopyName(original.Name);
        string copy = referencesOtherTable
            ? PostgresSql.Quote(original with { Name = copyName })
            : "pg_temp." + PostgresSql.Quote(copyName);
        string create = $"CREATE {(referencesOtherTable ? "" : "TEMP ")}TABLE {copy} (LIKE {PostgresSql.Quote(original)} INCLUDING ALL)";

        if (!referencesOtherTable)
        {
            // Before the measured transaction: the copy's creation and renames must not hold locks inside it.
            await catalog.ExecuteAsync($"SET lock_timeout = '5s'; DROP TABLE IF EXISTS {copy}; {create}", cancellationToken);
            await catalog.AlignIndexNamesAsync(originalOid, await CopyOidAsync(catalog, copy, cancellationToken), copy, cancellationToken);
        }

        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        try
        {
            // Planning must never queue behind a long transaction for long.
            await catalog.ExecuteAsync("SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '60s'", cancellationToken);
            if (referencesOtherTable)
            {
                await catalog.ExecuteAsync(create, cancellationToken);
            }

            uint copyOid = await CopyOidAsync(catalog, copy, cancellationToken);

            IReadOnlyList<PostgresColumn> before = await catalog.ColumnsAsync(copyOid, cancellationToken);
            PostgresCatalog.StorageState storageBefore = await catalog.StorageAsync(copyOid, cancellationToken);
            var locksBefore = await catalog.HeldLocksAsync(cancellationToken);

            if (!statement.ChangeClauses.Any() && statement.Kind == AlterStatementKind.AlterTable)
            {
                return (new ServerFindings
                {
                    Method = "catalog only (rename)", RewritesTable = false, ScansTable = false, BuildsIndex = false,
                    Lock = PostgresLockMode.AccessExclusive.Describe() + ", held only for the rename", BlocksWrites = true, BlocksReads = true,
                }, before, before);
            }

            string sql = statement.RenderFor(copy);
            try
            {
                await catalog.ExecuteAsync(sql, cancellationToken);
            }
            catch (PostgresException e)
            {
                throw new OscException($"The server rejects the ALTER: {e.MessageText} (SQLSTATE {e.SqlState})",
                    "Fix the statement; it was tried only on an empty copy, the table is untouched.", e);
            }

            IReadOnlyList<PostgresColumn> after = await catalog.ColumnsAsync(copyOid, cancellationToken);
            PostgresCatalog.StorageState storageAfter = await catalog.StorageAsync(copyOid, cancellationToken);
            var newLocks = (await catalog.HeldLocksAsync(cancellationToken)).Except(locksBefore).ToList();

            PostgresLockMode lockMode = newLocks.Where(l => l.Relation == copyOid).Select(l => PostgresLockMode.FromPgLocks(l.Mode))
                .OfType<PostgresLockMode>().MaxBy(m => m.Strength) ?? PostgresLockMode.AccessExclusive;
            if (statement.Kind == AlterStatementKind.CreateIndex && statement.Concurrently)
            {
                // Tried without CONCURRENTLY (it cannot run in a transaction); the concurrent build takes this instead.
                lockMode = PostgresLockMode.ShareUpdateExclusive;
            }

            // Locks on other tables (a foreign key's referenced table): the strongest per table, when it blocks anything.
            var others = newLocks.Where(l => l.Relation != copyOid)
                .GroupBy(l => l.Table)
                .Select(g => (Table: g.Key, Mode: g.Select(l => PostgresLockMode.FromPgLocks(l.Mode)).OfType<PostgresLockMode>().MaxBy(m => m.Strength)))
                .Where(x => x.Mode is { Strength: > 2 })
                .Select(x => new OtherTableLock(x.Table, x.Mode!.Describe(), x.Mode.BlocksWrites))
                .ToList();

            bool rewrites = storageAfter.FileNode != storageBefore.FileNode;
            bool buildsIndex = storageAfter.Indexes != storageBefore.Indexes;
            bool scans = storageAfter.Scans > storageBefore.Scans;
            var findings = new ServerFindings
            {
                Method = rewrites ? "table rewrite" : buildsIndex ? "index build" : scans ? "full-table scan (validation)" : "catalog only",
                RewritesTable = rewrites,
                BuildsIndex = buildsIndex,
                ScansTable = scans,
                Lock = lockMode.Describe(),
                BlocksWrites = lockMode.BlocksWrites,
                BlocksReads = lockMode.BlocksReads,
                OtherTables = others,
                Attempts = [new PlanAttempt(NativeSql(statement, original), true, null)],
            };
            return (findings, before, after);
        }
        finally
        {
            await transaction.RollbackAsync(CancellationToken.None);
            if (!referencesOtherTable)
            {
                await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {copy}", CancellationToken.None);
            }
        }
    }

    private static Task<uint> CopyOidAsync(PostgresCatalog catalog, string copy, CancellationToken cancellationToken) =>
        catalog.ScalarAsync<uint>($"SELECT '{copy.Replace("'", "''", StringComparison.Ordinal)}'::regclass::oid", cancellationToken);

    private static List<ApplicationImpact> Impacts(AlterStatement statement, IReadOnlyList<PostgresColumn> before, IReadOnlyList<PostgresColumn> after)
    {
        var impacts = new List<ApplicationImpact>();
        var afterByNumber = after.ToDictionary(c => c.Number);
        foreach (PostgresColumn column in before)
        {
            if (!afterByNumber.TryGetValue(column.Number, out PostgresColumn? changed))
            {
                bool insertsNeedIt = column.NotNull && !column.HasDefault && !column.Generated;
                impacts.Add(new ApplicationImpact(ImpactKind.DropColumn, column.Name, $"Code that reads or writes {column.Name} fails once it is dropped.")
                { OldType = insertsNeedIt ? column.Type : null });
                continue;
            }

            if (changed.Name != column.Name)
            {
                impacts.Add(new ApplicationImpact(ImpactKind.RenameColumn, column.Name, $"Code that reads or writes {column.Name} fails the moment it is renamed to {changed.Name}.")
                { NewName = changed.Name, OldType = column.Type });
            }
            else if (!PostgresTypeCompatibility.IsWidening(column.Type, changed.Type))
            {
                impacts.Add(new ApplicationImpact(ImpactKind.IncompatibleType, column.Name, $"{column.Type} to {changed.Type} can reject or change values the application writes and reads.")
                { OldType = column.Type, NewType = changed.Type });
            }
        }

        if (statement.RenamesTable)
        {
            impacts.Add(new ApplicationImpact(ImpactKind.RenameTable, statement.NewTableName ?? "?", "Code that names the table fails the moment it is renamed.")
            { NewName = statement.NewTableName });
        }

        return impacts;
    }
}
