using OnlineSchemaChange.Core.Plan;

namespace OnlineSchemaChange.Cli.Output;

/// <summary>The plan as scripts read it: a stable shape, documented in docs/operations.md.</summary>
internal sealed record PlanJson(
    string Engine,
    string ServerVersion,
    string Connection,
    string Table,
    string Alter,
    ChangeRisk Risk,
    PlanStrategy Strategy,
    int ExitCode,
    double EstimatedBlockingSeconds,
    TableSize Size,
    ServerFindings Server,
    IReadOnlyList<ApplicationImpact> Impacts,
    IReadOnlyList<PlanStep> Steps,
    IReadOnlyList<string> Notes,
    string? InstantStatement)
{
    public static PlanJson From(AlterPlan plan, string connection)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return new PlanJson(plan.Engine, plan.ServerVersion, connection, plan.Table, plan.Alter, plan.Risk, plan.Strategy, plan.ExitCode,
            plan.EstimatedBlockingTime.TotalSeconds, plan.Size, plan.Findings, plan.Impacts,
            plan.Steps.Select(s => s with { Command = s.Command?.Replace("<connection>", connection, StringComparison.Ordinal) }).ToList(), plan.Notes,
            plan.InstantStatement);
    }
}
