namespace OnlineSchemaChange.Core.Plan;

/// <summary>
/// Turns what the server reported into a recommendation, the same way for every engine. The order matters: a change
/// the application sees needs expand-contract however cheap it is on the server (an instant DROP COLUMN still breaks
/// the code that reads it); otherwise the cheapest way that never blocks writes for longer than a brief lock wins.
/// </summary>
public static class StrategyAdvisor
{
    /// <param name="canRebuildOnline">
    /// False for a table `osc alter` refuses (system-versioned, partitioned, in an inheritance tree): a rewrite that does
    /// not block writes is then best left to the server, and one that blocks them has no online way at all.
    /// </param>
    public static PlanStrategy Decide(ServerFindings findings, IReadOnlyCollection<ApplicationImpact> impacts, bool hasSafeVariant, bool canRebuildOnline = true)
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
            ChangeRisk.Online when !canRebuildOnline => PlanStrategy.RunNatively,
            _ when !canRebuildOnline => PlanStrategy.MaintenanceWindow,
            _ => PlanStrategy.OnlineRebuild,
        };
    }
}
