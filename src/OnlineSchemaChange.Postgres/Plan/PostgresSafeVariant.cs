using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Postgres.Plan;

/// <summary>
/// The non-blocking forms PostgreSQL offers for changes that otherwise scan or build under a write-blocking lock:
/// CREATE INDEX CONCURRENTLY; ADD CONSTRAINT ... NOT VALID then VALIDATE (SHARE UPDATE EXCLUSIVE); SET NOT NULL
/// after a validated CHECK (col IS NOT NULL), which PostgreSQL 12+ trusts instead of scanning; UNIQUE and PRIMARY KEY
/// built concurrently and attached USING INDEX. Offered only when every clause of the ALTER has such a form.
/// </summary>
public static class PostgresSafeVariant
{
    /// <summary>The steps as `osc plan` shows them: each brief one behind the lock timeout an operator should set.</summary>
    public static IReadOnlyList<PlanStep>? TryBuild(AlterStatement statement, TableName table) =>
        TryBuildSteps(statement, table)?.Select(s => new PlanStep(s.Phase, s.Description, (s.Lock == NativeStepLock.Brief ? "SET lock_timeout = '2s';\n" : "") + s.Sql + ";")).ToList();

    /// <summary>The steps as `osc alter` runs them, each with what removes it again if a later one fails; null when some clause has no such form.</summary>
    public static IReadOnlyList<NativeStep>? TryBuildSteps(AlterStatement statement, TableName table)
    {
        ArgumentNullException.ThrowIfNull(statement);
        ArgumentNullException.ThrowIfNull(table);
        string t = PostgresSql.Quote(table);
        if (statement.Kind == AlterStatementKind.CreateIndex)
        {
            // Unnamed, the index the build leaves on failure could not be found again to drop it.
            if (statement.Concurrently || statement.IndexName is null)
            {
                return null;
            }

            return
            [
                ConcurrentIndex("build concurrently", "Build the index without blocking writes (SHARE UPDATE EXCLUSIVE). It cannot run in a transaction block. If it fails it leaves an INVALID index: drop it (DROP INDEX CONCURRENTLY) before retrying; never retry with IF NOT EXISTS, which keeps the invalid one.",
                    table, statement.IndexName, $"CREATE {(statement.Unique ? "UNIQUE " : "")}INDEX CONCURRENTLY {PostgresSql.Quote(statement.IndexName)} ON {t} {statement.CreateIndexTail}"),
            ];
        }

        var steps = new List<NativeStep>();
        // SET NOT NULL has no undo: it runs after every step that can still fail on the rows (a validation, a unique
        // build), just before the attach that may need it.
        var setNotNull = new List<NativeStep>();
        var finalBriefClauses = new List<string>();
        int n = 0;
        foreach (AlterClause clause in statement.ChangeClauses)
        {
            var tokens = SqlLexer.Tokenize(clause.Text, SqlDialect.Postgres);
            string upper = clause.Text.ToUpperInvariant();
            n++;
            if (clause.Kind == AlterClauseKind.AddConstraint && (upper.Contains("FOREIGN KEY", StringComparison.Ordinal) || upper.Contains("CHECK", StringComparison.Ordinal))
                && !upper.Contains("NOT VALID", StringComparison.Ordinal))
            {
                (string name, string body) = NamedConstraint(clause.Text, tokens, $"{table.Name}_osc_{n}");
                steps.Add(NotValid("Add the constraint without checking existing rows: a brief lock, and new writes are checked from now on.", t, name, body));
                steps.Add(new NativeStep("validate", "Check existing rows under SHARE UPDATE EXCLUSIVE: reads and writes continue.",
                    $"ALTER TABLE {t} VALIDATE CONSTRAINT {PostgresSql.Quote(name)}", NativeStepLock.Concurrent));
            }
            else if (clause.Kind == AlterClauseKind.AlterColumn && clause.Column is not null && upper.EndsWith("SET NOT NULL", StringComparison.Ordinal))
            {
                string check = $"{table.Name}_{clause.Column}_not_null";
                string column = PostgresSql.Quote(clause.Column);
                steps.Add(NotValid($"Add CHECK ({clause.Column} IS NOT NULL) without scanning.", t, check, $"CHECK ({column} IS NOT NULL)"));
                steps.Add(new NativeStep("validate", "Check existing rows while reads and writes continue.", $"ALTER TABLE {t} VALIDATE CONSTRAINT {PostgresSql.Quote(check)}", NativeStepLock.Concurrent));
                setNotNull.Add(new NativeStep("set not null", "SET NOT NULL now trusts the validated CHECK instead of scanning (PostgreSQL 12+), so the lock is brief; then the CHECK is redundant.",
                    $"ALTER TABLE {t} ALTER COLUMN {column} SET NOT NULL;\nALTER TABLE {t} DROP CONSTRAINT {PostgresSql.Quote(check)}", NativeStepLock.Brief));
            }
            else if (clause.Kind == AlterClauseKind.AddConstraint && (upper.Contains("UNIQUE", StringComparison.Ordinal) || upper.Contains("PRIMARY KEY", StringComparison.Ordinal))
                     && clause.Text.Contains('(', StringComparison.Ordinal))
            {
                bool primary = upper.Contains("PRIMARY KEY", StringComparison.Ordinal);
                (string name, _) = NamedConstraint(clause.Text, tokens, primary ? $"{table.Name}_pkey_new" : $"{table.Name}_osc_{n}_key");
                string columns = clause.Text[clause.Text.IndexOf('(', StringComparison.Ordinal)..(clause.Text.LastIndexOf(')') + 1)];
                steps.Add(ConcurrentIndex("build concurrently", "Build the unique index without blocking writes. If it fails (duplicates), drop the INVALID index it leaves before retrying.",
                    table, name, $"CREATE UNIQUE INDEX CONCURRENTLY {PostgresSql.Quote(name)} ON {t} {columns}"));
                finalBriefClauses.Add($"ADD CONSTRAINT {PostgresSql.Quote(name)} {(primary ? "PRIMARY KEY" : "UNIQUE")} USING INDEX {PostgresSql.Quote(name)}");
            }
            else if (clause.Kind == AlterClauseKind.DropIndexOrConstraint)
            {
                finalBriefClauses.Insert(0, clause.Text);
            }
            else
            {
                return null;
            }
        }

        steps.AddRange(setNotNull);
        if (finalBriefClauses.Count > 0)
        {
            steps.Add(new NativeStep("attach", "Swap in the prebuilt index as the constraint: a catalog change under a brief ACCESS EXCLUSIVE lock (primary key columns must already be NOT NULL, or this scans).",
                $"ALTER TABLE {t} {string.Join(", ", finalBriefClauses)}", NativeStepLock.Brief));
        }

        return steps.Count == 0 ? null : steps;
    }

    /// <summary>A constraint added NOT VALID, dropped again if a later step fails: it would go on checking new writes.</summary>
    private static NativeStep NotValid(string description, string table, string name, string body) =>
        new("add NOT VALID", description, $"ALTER TABLE {table} ADD CONSTRAINT {PostgresSql.Quote(name)} {body} NOT VALID", NativeStepLock.Brief)
        {
            Undo = new NativeStep("undo", $"Drop {name} again.", $"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {PostgresSql.Quote(name)}", NativeStepLock.Brief),
        };

    /// <summary>A concurrent index build, whose index (INVALID, if the build failed) is dropped again if it or a later step fails.</summary>
    private static NativeStep ConcurrentIndex(string phase, string description, TableName table, string index, string sql) =>
        new(phase, description, sql, NativeStepLock.Concurrent)
        {
            Undo = new NativeStep("undo", $"Drop {index} again.", $"DROP INDEX CONCURRENTLY IF EXISTS {PostgresSql.Quote(table with { Name = index })}", NativeStepLock.Concurrent),
        };

    /// <summary>The constraint's name (given or made up) and its body after the name.</summary>
    private static (string Name, string Body) NamedConstraint(string text, IReadOnlyList<SqlToken> tokens, string fallbackName)
    {
        // "ADD CONSTRAINT name body..." or "ADD body...".
        if (tokens.Count > 3 && tokens[1].IsWord("CONSTRAINT"))
        {
            return (tokens[2].IdentifierValue, text[tokens[3].Start..]);
        }

        return (fallbackName, text[tokens[1].Start..]);
    }
}
