using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Migration;

namespace OnlineSchemaChange.MySql.Plan;

/// <summary>
/// Asks MySQL/MariaDB how it would run an ALTER: on an empty copy of the table (CREATE TABLE ... LIKE), try the
/// algorithms from cheapest to dearest and keep the first the server accepts. The server refuses an algorithm it
/// cannot honour (errors 1845/1846), so the answer is the server's own, for its exact version and table. The copy
/// is dropped on every path; a copy left by a killed run is dropped by the next plan or by `osc cleanup`.
/// </summary>
public sealed class MySqlAlterPlanner(ConnectionTarget target) : IAlterPlanner
{
    private static readonly AlgorithmAttempt[] Ladder =
    [
        new("ALGORITHM=INSTANT", false, false, "exclusive metadata lock, held only for the catalog change"),
        new("ALGORITHM=INPLACE, LOCK=NONE", false, false, "none while it works: reads and writes continue (brief exclusive metadata lock at start and end)"),
        new("ALGORITHM=INPLACE, LOCK=SHARED", true, false, "shared: reads continue, writes wait for the whole operation"),
        new("ALGORITHM=INPLACE, LOCK=EXCLUSIVE", true, true, "exclusive: reads and writes wait for the whole operation"),
        new("ALGORITHM=COPY, LOCK=SHARED", true, false, "shared: reads continue, writes wait while every row is copied"),
        new("ALGORITHM=COPY, LOCK=EXCLUSIVE", true, true, "exclusive: reads and writes wait while every row is copied"),
    ];

    public async Task<AlterPlan> PlanAsync(TableName table, string alter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);

        // Parse before connecting: bad input is refused with nothing touched.
        AlterStatement statement = AlterStatement.Parse(alter, table, SqlDialect.MySql);
        string schema = table.Schema ?? target.Database ?? throw new OscException(
            $"No database given for table {table.Name}.", "Name it in the URI (mysql://host/db), with --database, or as --table db.table.");
        var qualified = new TableName(schema, table.Name);

        await using MySqlConnection connection = await MySqlConnections.OpenAsync(target, cancellationToken);
        var catalog = new MySqlCatalog(connection);
        string version = await catalog.ServerVersionAsync(cancellationToken);
        (TableSize size, bool systemVersioned) = await catalog.DescribeAsync(qualified, cancellationToken) ?? throw new OscException(
            $"Table {qualified} does not exist.", "Check the database and table names (they are case-sensitive on Linux).");
        if (systemVersioned)
        {
            // The empty copy is system-versioned too, and the server refuses any ALTER of one unless told what to do
            // with the history; KEEP is what an operator's native run would need as well (the steps say so).
            await catalog.ExecuteAsync("SET SESSION system_versioning_alter_history = KEEP", cancellationToken);
        }

        IReadOnlyList<MySqlColumn> columnsBefore = await catalog.ColumnsAsync(qualified, cancellationToken);
        IReadOnlyList<string> key = await catalog.PrimaryKeyAsync(qualified, cancellationToken);

        var copy = new TableName(schema, PlanCopyName(table.Name));
        (ServerFindings findings, IReadOnlyList<MySqlColumn> columnsAfter) = await TryOnCopyAsync(connection, catalog, statement, qualified, copy, cancellationToken);

        IReadOnlyList<ApplicationImpact> impacts = Impacts(statement, columnsBefore, columnsAfter);
        PlanStrategy strategy = StrategyAdvisor.Decide(findings, impacts, hasSafeVariant: false, canRebuildOnline: !systemVersioned);
        MySqlForeignKeys foreignKeys = await MySqlForeignKeys.ReadAsync(connection, qualified, cancellationToken);
        List<string> notes = Notes(statement, findings, impacts);
        if (systemVersioned)
        {
            notes.Add("This is a system-versioned table: osc alter does not rebuild it, because an online copy takes the current rows only and the history would be lost. "
                      + "A native ALTER of it needs SET SESSION system_versioning_alter_history = KEEP (the steps include it); with KEEP the history is kept and converted to the new definition along with the current rows.");
        }

        if (strategy == PlanStrategy.OnlineRebuild && foreignKeys.Any)
        {
            notes.Add(ForeignKeyNote(foreignKeys));
        }
        return new AlterPlan
        {
            Engine = version.Contains("MariaDB", StringComparison.OrdinalIgnoreCase) ? "MariaDB" : "MySQL",
            ServerVersion = version,
            Table = qualified.ToString(),
            Alter = statement.Source.Trim(),
            Size = size,
            Findings = findings,
            Impacts = impacts,
            Strategy = strategy,
            Steps = Steps(strategy, statement, qualified, key, findings, impacts, foreignKeys.Any, systemVersioned),
            Notes = notes,

            // Named with its algorithm, so that the server refuses rather than do more than the copy showed. A
            // system-versioned table is left out: its ALTER needs the history setting the planner's session had.
            InstantStatement = findings.Risk == ChangeRisk.Instant && findings.Method == "ALGORITHM=INSTANT" && !systemVersioned && statement.Kind == AlterStatementKind.AlterTable
                               && statement.ChangeClauses.Any() && !statement.RenamesTable
                ? findings.Attempts.Single(a => a.Accepted).Sql
                : null,
        };
    }

    /// <summary>The empty copy's name: recognisable as ours, within MySQL's 64-character limit.</summary>
    public static string PlanCopyName(string table)
    {
        ArgumentNullException.ThrowIfNull(table);
        const string suffix = "_osc_plan";
        string name = "_" + table;
        return (name.Length + suffix.Length > 64 ? name[..(64 - suffix.Length)] : name) + suffix;
    }

    private static async Task<(ServerFindings, IReadOnlyList<MySqlColumn>)> TryOnCopyAsync(MySqlConnection connection, MySqlCatalog catalog,
        AlterStatement statement, TableName original, TableName copy, CancellationToken cancellationToken)
    {
        // Planning must never queue behind a long transaction for long: CREATE ... LIKE needs a shared metadata lock.
        await catalog.ExecuteAsync("SET SESSION lock_wait_timeout = 10", cancellationToken);
        await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(copy)}", cancellationToken);
        try
        {
            await catalog.ExecuteAsync($"CREATE TABLE {MySqlSql.Quote(copy)} LIKE {MySqlSql.Quote(original)}", cancellationToken);
            if (!statement.ChangeClauses.Any() && statement.Kind == AlterStatementKind.AlterTable)
            {
                // Only a table rename: a catalog change on every version; nothing to try.
                return (new ServerFindings
                {
                    Method = "RENAME (catalog only)", RewritesTable = false, ScansTable = false, BuildsIndex = false,
                    Lock = "exclusive metadata lock, held only for the rename", BlocksWrites = false, BlocksReads = false,
                }, await catalog.ColumnsAsync(original, cancellationToken));
            }

            long? idBefore = await catalog.InnoDbTableIdAsync(copy, cancellationToken);
            IReadOnlySet<string> indexesBefore = await catalog.IndexSignaturesAsync(copy, cancellationToken);
            var attempts = new List<PlanAttempt>();
            foreach (AlgorithmAttempt attempt in Ladder)
            {
                string sql = Render(statement, copy, attempt.Clause);
                try
                {
                    await catalog.ExecuteAsync(sql, cancellationToken);
                }
                catch (MySqlException e) when (IsAlgorithmRefusal(e))
                {
                    attempts.Add(new PlanAttempt(Render(statement, original, attempt.Clause), false, e.Message));
                    continue;
                }
                catch (MySqlException e)
                {
                    throw new OscException($"The server rejects the ALTER: {e.Message} (error {(int)e.ErrorCode})",
                        "Fix the statement; it was tried only on an empty copy, the table is untouched.", e);
                }

                long? idAfter = await catalog.InnoDbTableIdAsync(copy, cancellationToken);

                // A table that left InnoDB (ENGINE=MyISAM) was copied, whatever algorithm the server accepted.
                bool rewrites = idBefore is not null ? idBefore != idAfter : attempt.Clause.Contains("COPY", StringComparison.Ordinal);
                AlgorithmAttempt done = attempt;
                if (rewrites && attempt.Clause.Contains("INSTANT", StringComparison.Ordinal))
                {
                    // MariaDB accepts ALGORITHM=INSTANT with an engine change and copies the table anyway, under the
                    // copy's lock: report what it did, not what it was asked.
                    attempts.Add(new PlanAttempt(Render(statement, original, attempt.Clause), true, "accepted, but the server copied the table"));
                    done = Ladder.First(a => a.Clause.StartsWith("ALGORITHM=COPY", StringComparison.Ordinal));
                }
                else
                {
                    attempts.Add(new PlanAttempt(Render(statement, original, attempt.Clause), true, null));
                }

                bool buildsIndex = !indexesBefore.SetEquals(await catalog.IndexSignaturesAsync(copy, cancellationToken))
                                   && !done.Clause.Contains("INSTANT", StringComparison.Ordinal);
                var findings = new ServerFindings
                {
                    Method = done.Clause,
                    RewritesTable = rewrites,
                    BuildsIndex = buildsIndex,

                    // In place, no rebuild and no index, yet the server wants a lock: it reads the rows to validate.
                    ScansTable = !rewrites && !buildsIndex && done.BlocksWrites,
                    Lock = done.Lock,
                    BlocksWrites = done.BlocksWrites,
                    BlocksReads = done.BlocksReads,
                    Attempts = attempts,
                };
                return (findings, await catalog.ColumnsAsync(copy, cancellationToken));
            }

            throw new OscException("The server accepts the ALTER with no algorithm: " + attempts[^1].ServerMessage,
                "Check the statement against the server's documentation for ALTER TABLE.");
        }
        finally
        {
            await DropCopyAsync(catalog, copy);
        }
    }

    private static async Task DropCopyAsync(MySqlCatalog catalog, TableName copy)
    {
        // Not cancellable: the copy must go even when the operator pressed Ctrl-C.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(copy)}", timeout.Token);
    }

    // ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON) 1845/1846; ER_UNKNOWN_ALTER_ALGORITHM/LOCK 1800/1801 where a server
    // predates INSTANT. MySqlConnector names none of them.
    private static bool IsAlgorithmRefusal(MySqlException e) => (int)e.ErrorCode is 1845 or 1846 or 1800 or 1801;

    private static string Render(AlterStatement statement, TableName target, string algorithm)
    {
        if (statement.Kind == AlterStatementKind.CreateIndex)
        {
            string name = statement.IndexName is null ? "" : MySqlSql.Quote(statement.IndexName) + " ";
            return $"ALTER TABLE {MySqlSql.Quote(target)} ADD {(statement.Unique ? "UNIQUE " : "")}INDEX {name}{statement.CreateIndexTail}, {algorithm}";
        }

        return statement.RenderFor(MySqlSql.Quote(target), algorithm);
    }

    private static List<ApplicationImpact> Impacts(AlterStatement statement, IReadOnlyList<MySqlColumn> before, IReadOnlyList<MySqlColumn> after)
    {
        var impacts = new List<ApplicationImpact>();
        var afterByName = after.ToDictionary(c => c.Name, StringComparer.OrdinalIgnoreCase);
        IReadOnlyDictionary<string, string> renamed = statement.RenamedColumns;
        foreach (MySqlColumn column in before)
        {
            if (renamed.TryGetValue(column.Name, out string? newName))
            {
                impacts.Add(new ApplicationImpact(ImpactKind.RenameColumn, column.Name,
                    $"Code that reads or writes {column.Name} fails the moment it is renamed to {newName}.")
                { NewName = newName, OldType = column.ColumnType });
                continue;
            }

            if (!afterByName.TryGetValue(column.Name, out MySqlColumn? changed))
            {
                bool insertsNeedIt = !column.Nullable && !column.HasDefault && !column.Generated;
                impacts.Add(new ApplicationImpact(ImpactKind.DropColumn, column.Name,
                    $"Code that reads or writes {column.Name} fails once it is dropped.")
                { OldType = insertsNeedIt ? column.ColumnType : null });
                continue;
            }

            if (!MySqlTypeCompatibility.IsWidening(column.ColumnType, changed.ColumnType))
            {
                impacts.Add(new ApplicationImpact(ImpactKind.IncompatibleType, column.Name,
                    $"{column.ColumnType} to {changed.ColumnType} can reject or change values the application writes and reads.")
                { OldType = column.ColumnType, NewType = changed.ColumnType });
            }
        }

        if (statement.RenamesTable)
        {
            impacts.Add(new ApplicationImpact(ImpactKind.RenameTable, statement.NewTableName ?? "?",
                "Code that names the table fails the moment it is renamed.") { NewName = statement.NewTableName });
        }

        return impacts;
    }

    private static List<PlanStep> Steps(PlanStrategy strategy, AlterStatement statement, TableName table, IReadOnlyList<string> key,
        ServerFindings findings, IReadOnlyList<ApplicationImpact> impacts, bool hasForeignKeys, bool systemVersioned)
    {
        string keepHistory = systemVersioned ? "SET SESSION system_versioning_alter_history = KEEP;\n" : "";
        switch (strategy)
        {
            case PlanStrategy.ExpandContract:
                return ExpandContractSteps.For(impacts, table, key, MySqlExpandContractSql.Instance).ToList();
            case PlanStrategy.OnlineRebuild:
                string clauses = string.Join(", ", statement.ChangeClauses.Select(c => c.Text));
                return
                [
                    new PlanStep("rebuild online", "Rebuild the table online: a shadow table, a chunked throttled copy, binlog replay and an atomic cut-over.")
                    {
                        Command = $"osc alter <connection> --table {table} --alter \"{clauses.Replace("\"", "\\\"", StringComparison.Ordinal)}\" --execute"
                                  + (hasForeignKeys ? " --foreign-keys rebuild" : ""),
                    },
                ];
            default:
                string algorithm = findings.Method.StartsWith("ALGORITHM", StringComparison.Ordinal) ? findings.Method : "";
                string sql = statement.Kind == AlterStatementKind.AlterTable && !statement.ChangeClauses.Any()
                    ? $"ALTER TABLE {MySqlSql.Quote(table)} {statement.Clauses[^1].Text};"
                    : Render(statement, table, algorithm).TrimEnd(',', ' ') + ";";
                string native = $"SET SESSION lock_wait_timeout = 5;\n{keepHistory}{sql}";
                return strategy == PlanStrategy.MaintenanceWindow
                    ? [PlanStep.MaintenanceWindow(findings, native)]
                    :
                    [
                        new PlanStep("run natively",
                            "Run it with a short metadata-lock timeout, naming the algorithm so the server refuses rather than silently doing something slower. If it times out (a long transaction holds the table), retry with backoff; do not raise the timeout: every query queues behind a waiting ALTER.",
                            native),
                    ];
        }
    }

    private static List<string> Notes(AlterStatement statement, ServerFindings findings, IReadOnlyList<ApplicationImpact> impacts)
    {
        var notes = new List<string>();
        if (findings.Risk == ChangeRisk.Online)
        {
            notes.Add("Replicas replay the ALTER as one statement after the primary finishes it: expect replica lag about as long as the operation.");
        }

        if (statement.Clauses.Any(c => c.Kind is AlterClauseKind.AddConstraint or AlterClauseKind.AddIndex && c.Text.Contains("UNIQUE", StringComparison.OrdinalIgnoreCase))
            || (statement.Kind == AlterStatementKind.CreateIndex && statement.Unique))
        {
            notes.Add("A UNIQUE key fails on existing duplicates (and an online rebuild with INSERT IGNORE would silently drop them): look for duplicates first with SELECT cols, COUNT(*) ... GROUP BY cols HAVING COUNT(*) > 1.");
        }

        if (statement.Clauses.Any(c => c.Text.Contains("FOREIGN", StringComparison.OrdinalIgnoreCase)) && findings.Method.Contains("COPY", StringComparison.Ordinal))
        {
            notes.Add("InnoDB adds a foreign key in place only with foreign_key_checks=0, which skips validating existing rows.");
        }

        if (impacts.Count > 0 && statement.ChangeClauses.Count() > impacts.Count)
        {
            notes.Add("The ALTER also makes changes the application does not see: plan those separately once the expand-contract steps are done.");
        }

        if (findings.Attempts.Count > 1)
        {
            notes.Add("Cheaper algorithms refused: " + string.Join("; ", findings.Attempts.Where(a => !a.Accepted).Select(a => a.ServerMessage).Distinct()));
        }

        return notes;
    }

    /// <summary>What an online rebuild of a table with foreign keys takes: the option, and the cases it still refuses.</summary>
    private static string ForeignKeyNote(MySqlForeignKeys keys)
    {
        var note = new System.Text.StringBuilder(
            $"The table has foreign keys ({keys.Own.Count} of its own, {keys.Referencing.Count} from other tables): osc alter refuses it unless "
            + "--foreign-keys rebuild is given, which recreates its own keys on the new table at the swap and moves the other tables' keys to it right after (docs/operations.md).");
        if (keys.Own.Any(k => k.Cascades))
        {
            note.Append(" Its own keys with CASCADE or SET NULL rules are refused even then: the rows a parent's change cascades to are not in the binlog, so no replay can see them.");
        }

        return note.ToString();
    }

    private sealed record AlgorithmAttempt(string Clause, bool BlocksWrites, bool BlocksReads, string Lock);
}
