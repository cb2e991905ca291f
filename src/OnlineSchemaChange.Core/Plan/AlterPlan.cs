namespace OnlineSchemaChange.Core.Plan;

/// <summary>The planner's answer for one ALTER on one server: what the server does and what we recommend.</summary>
public sealed record AlterPlan
{
    public required string Engine { get; init; }

    public required string ServerVersion { get; init; }

    public required string Table { get; init; }

    public required string Alter { get; init; }

    public required TableSize Size { get; init; }

    public required ServerFindings Findings { get; init; }

    public required IReadOnlyList<ApplicationImpact> Impacts { get; init; }

    public required PlanStrategy Strategy { get; init; }

    public required IReadOnlyList<PlanStep> Steps { get; init; }

    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>
    /// The statement that makes the change natively as a catalog change only, on this table as it is (the server
    /// rewrote, scanned and indexed nothing on the empty copy, and the engine can run it as planned); null when the
    /// change needs more than that, or renames the table.
    /// </summary>
    public string? InstantStatement { get; init; }

    /// <summary>
    /// A non-blocking native form of the change, step by step (PostgreSQL: CONCURRENTLY, NOT VALID then VALIDATE),
    /// which `osc alter` runs instead of rebuilding the table; null when there is none, or it is not needed.
    /// </summary>
    public IReadOnlyList<NativeStep>? SafeSteps { get; init; }

    public ChangeRisk Risk => Findings.Risk;

    public TimeSpan EstimatedBlockingTime => Size.EstimateBlockingTime(Findings);

    public int ExitCode => PlanExitCodes.For(Strategy);
}
