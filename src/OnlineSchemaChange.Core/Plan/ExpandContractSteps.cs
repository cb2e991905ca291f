using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Core.Plan;

/// <summary>
/// Spells out the expand-contract sequence for changes the application sees. Each phase is its own deployment that
/// can be rolled back alone; only the last (contract) is irreversible, and it runs after verification.
/// </summary>
public static class ExpandContractSteps
{
    public const string Expand = "expand";
    public const string DualWrite = "dual-write";
    public const string Backfill = "backfill";
    public const string Verify = "verify";
    public const string SwitchReads = "switch reads";
    public const string Contract = "contract";

    public static IReadOnlyList<PlanStep> For(IEnumerable<ApplicationImpact> impacts, TableName table, IReadOnlyList<string> keyColumns,
        IExpandContractSql sql)
    {
        ArgumentNullException.ThrowIfNull(impacts);
        ArgumentNullException.ThrowIfNull(sql);
        var steps = new List<PlanStep>();
        foreach (ApplicationImpact impact in impacts)
        {
            steps.AddRange(impact.Kind switch
            {
                ImpactKind.RenameColumn => Rename(impact, table, keyColumns, sql),
                ImpactKind.DropColumn => Drop(impact, table, sql),
                ImpactKind.IncompatibleType => Retype(impact, table, keyColumns, sql),
                ImpactKind.RenameTable => RenameTable(impact, table, sql),
                _ => throw new ArgumentOutOfRangeException(nameof(impacts), impact.Kind, "unknown impact"),
            });
        }

        return steps;
    }

    private static IEnumerable<PlanStep> Rename(ApplicationImpact i, TableName table, IReadOnlyList<string> key, IExpandContractSql sql)
    {
        string oldName = i.Subject, newName = i.NewName!, type = i.OldType!;
        string source = sql.QuoteIdentifier(oldName);
        yield return new(Expand, $"Add {newName} beside {oldName}, nullable, so nothing that runs today notices.",
            sql.AddColumn(table, newName, type));
        yield return new(DualWrite, $"Deploy code that writes both {oldName} and {newName} on every insert and update; reads stay on {oldName}.");
        yield return new(Backfill, $"Copy {oldName} into {newName} in keyset batches (1,000-10,000 rows), pausing when replicas lag; repeat until a batch touches no row. Idempotent: safe to re-run.",
            sql.BackfillBatch(table, key, newName, source));
        yield return new(Verify, "Check that no row differs; the contract waits until this returns 0.",
            sql.CountMismatches(table, newName, source));
        yield return new(SwitchReads, $"Deploy code that reads {newName}, still writing both.");
        yield return new(Contract, $"Deploy code that stops writing {oldName}, then drop it.", sql.DropColumn(table, oldName));
    }

    private static IEnumerable<PlanStep> Drop(ApplicationImpact i, TableName table, IExpandContractSql sql)
    {
        string column = i.Subject;
        if (i.OldType is not null)
        {
            yield return new(Expand, $"If {column} is NOT NULL without a default, allow NULL first, so inserts that omit it keep working.",
                sql.MakeNullable(table, column, i.OldType));
        }

        yield return new(SwitchReads, $"Deploy code that neither reads nor writes {column} (including SELECT * consumers and ORMs' column lists).");
        yield return new(Verify, $"Run a full release cycle; confirm nothing uses {column} (query logs, performance_schema or pg_stat_statements).");
        yield return new(Contract, $"Drop {column}.", sql.DropColumn(table, column));
    }

    private static IEnumerable<PlanStep> Retype(ApplicationImpact i, TableName table, IReadOnlyList<string> key, IExpandContractSql sql)
    {
        string column = i.Subject, newColumn = column + "_new", newType = i.NewType!;
        string converted = sql.Cast(sql.QuoteIdentifier(column), newType);
        yield return new(Expand, $"Add {newColumn} with the new type {newType}, nullable.", sql.AddColumn(table, newColumn, newType));
        yield return new(DualWrite, $"Deploy code that writes {column} and {newColumn} (converted) on every insert and update; values that do not fit {newType} now fail loudly in the application, not in a migration.");
        yield return new(Backfill, "Convert existing rows in keyset batches, throttled, until a batch touches no row.",
            sql.BackfillBatch(table, key, newColumn, converted));
        yield return new(Verify, "Check that every row converted exactly; the contract waits until this returns 0.",
            sql.CountMismatches(table, newColumn, converted));
        yield return new(SwitchReads, $"Deploy code that reads {newColumn}.");
        yield return new(Contract, $"Deploy code that stops writing {column}, then drop it. Keep the name {newColumn}, or rename it later with the same expand-contract steps.",
            sql.DropColumn(table, column));
    }

    private static IEnumerable<PlanStep> RenameTable(ApplicationImpact i, TableName table, IExpandContractSql sql)
    {
        string newName = i.NewName ?? "new_name";
        yield return new(Expand, $"Rename the table and leave a view under the old name, so old code keeps reading and writing through it (a single-table view is updatable).",
            sql.RenameTableBehindView(table, newName));
        yield return new(SwitchReads, $"Deploy code that uses {newName}.");
        yield return new(Contract, "Drop the compatibility view.", sql.DropView(table));
    }
}
