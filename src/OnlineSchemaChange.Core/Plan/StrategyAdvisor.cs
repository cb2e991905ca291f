namespace OnlineSchemaChange.Core.Plan;

/// <summary>
/// Turns what the server reported into a recommendation, the same way for every engine. The order matters: a change
/// the application sees needs expand-contract however cheap it is on the server (an instant DROP COLUMN still breaks
/// the code that reads it); otherwise the cheapest way that never blocks writes for longer than a brief lock wins.
/// </summary>
public static class StrategyAdvisor
{
    public static PlanStrategy Decide(ServerFindings findings, IReadOnlyCollection<ApplicationImpact> impacts, bool hasSafeVariant)
    {
        ArgumentNullException.ThrowIfNull(findings);
        ArgumentNullException.ThrowIfNull(impacts);
        if (impacts.Count > 0)
        {
            return PlanStrategy.ExpandContract;
        }

        return findings.Risk switch
        {
            ChangeRisk.Instant => PlanStrategy.RunNatively,

            // An online rebuild still rewrites every row, and replicas replay it as one long statement: we rebuild
            // those ourselves so the copy is chunked and throttled. An online index build does not rewrite.
            ChangeRisk.Online when !findings.RewritesTable => PlanStrategy.RunNatively,
            _ when hasSafeVariant => PlanStrategy.RunSafeVariant,
            _ => PlanStrategy.OnlineRebuild,
        };
    }
}
