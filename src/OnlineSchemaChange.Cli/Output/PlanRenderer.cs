using System.Globalization;
using OnlineSchemaChange.Core.Plan;
using Spectre.Console;

namespace OnlineSchemaChange.Cli.Output;

/// <summary>The plan for a person at a terminal: the verdict first, then the evidence, then what to run.</summary>
internal static class PlanRenderer
{
    public static void Render(IAnsiConsole console, AlterPlan plan, string connection)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(plan);
        ServerFindings f = plan.Findings;
        console.MarkupLine($"[bold]{Markup.Escape(plan.Table)}[/] on {Markup.Escape(plan.Engine)} {Markup.Escape(plan.ServerVersion)}: "
                           + $"about {plan.Size.EstimatedRows.ToString("N0", CultureInfo.InvariantCulture)} rows, {Bytes(plan.Size.TotalBytes)}");
        console.MarkupLine($"ALTER: {Markup.Escape(plan.Alter)}");
        console.WriteLine();

        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        grid.AddRow("Verdict", Verdict(plan));
        grid.AddRow("Server runs it as", Markup.Escape(f.Method));
        grid.AddRow("Lock", Markup.Escape(f.Lock));
        grid.AddRow("Rewrites the table", YesNo(f.RewritesTable));
        grid.AddRow("Scans the table", YesNo(f.ScansTable || f.RewritesTable));
        grid.AddRow("Builds an index", YesNo(f.BuildsIndex));
        foreach (OtherTableLock other in f.OtherTables)
        {
            grid.AddRow("Also locks", Markup.Escape($"{other.Table}: {other.Lock}"));
        }

        foreach (ApplicationImpact impact in plan.Impacts)
        {
            grid.AddRow("[yellow]Application sees[/]", Markup.Escape(impact.Explanation));
        }

        grid.AddRow("Recommendation", $"[bold]{Strategy(plan.Strategy)}[/] (exit code {plan.ExitCode})");
        console.Write(grid);
        console.WriteLine();

        if (plan.Steps.Count > 0)
        {
            console.MarkupLine("[bold]Steps[/]");
            int n = 1;
            foreach (PlanStep step in plan.Steps)
            {
                console.MarkupLine($" {n++}. [blue]{Markup.Escape(step.Phase)}[/]: {Markup.Escape(step.Description)}");
                foreach (string line in (step.Sql ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    console.MarkupLine($"      [grey]{Markup.Escape(line)}[/]");
                }

                if (step.Command is not null)
                {
                    console.MarkupLine($"      [grey]$ {Markup.Escape(step.Command.Replace("<connection>", connection, StringComparison.Ordinal))}[/]");
                }
            }
        }

        if (plan.InstantStatement is not null || plan.SafeSteps is not null)
        {
            // What osc alter does with it by default: the same statements, with the lock discipline applied for you.
            string alter = plan.Alter.Replace("\"", "\\\"", StringComparison.Ordinal);
            console.MarkupLine((plan.SafeSteps is null ? "Or let osc alter run it, with a lock timeout and retries:" : "Or let osc alter run them, with a lock timeout and retries, undoing what a failed step left:")
                               + $"\n      [grey]$ {Markup.Escape($"osc alter {connection} --table {plan.Table} --alter \"{alter}\" --execute")}[/]");
        }

        if (plan.Notes.Count > 0)
        {
            console.WriteLine();
            console.MarkupLine("[bold]Notes[/]");
            foreach (string note in plan.Notes)
            {
                console.MarkupLine($" - {Markup.Escape(note)}");
            }
        }
    }

    private static string Verdict(AlterPlan plan) => plan.Risk switch
    {
        ChangeRisk.Instant => "[green]INSTANT[/]: catalog change only, a brief lock whatever the table size",
        ChangeRisk.Online => "[green]ONLINE[/]: works through the table while reads and writes continue",
        _ => $"[red]BLOCKING[/]: {(plan.Findings.BlocksReads ? "reads and writes" : "writes")} wait for the whole operation, about {Duration(plan.EstimatedBlockingTime)} on this table",
    };

    private static string Strategy(PlanStrategy strategy) => strategy switch
    {
        PlanStrategy.RunNatively => "run natively, with a lock timeout",
        PlanStrategy.RunSafeVariant => "run the non-blocking form below",
        PlanStrategy.OnlineRebuild => "rebuild online with osc alter",
        PlanStrategy.MaintenanceWindow => "[red]no online way for this table[/]: run it natively when writes may wait",
        _ => "expand-contract: the application sees this change",
    };

    private static string YesNo(bool value) => value ? "yes" : "no";

    private static string Duration(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{t.TotalHours:0.0} h" : t.TotalMinutes >= 1 ? $"{t.TotalMinutes:0.0} min" : $"{Math.Max(t.TotalSeconds, 0.1):0.0} s";

    private static string Bytes(long bytes) =>
        bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.0} GiB" : bytes >= 1L << 20 ? $"{bytes / (double)(1L << 20):0.0} MiB" : $"{bytes / 1024.0:0.0} KiB";
}
