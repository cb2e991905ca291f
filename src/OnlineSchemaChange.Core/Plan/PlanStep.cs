namespace OnlineSchemaChange.Core.Plan;

/// <summary>One step of the recommended strategy: what to do, and the SQL when the step is SQL.</summary>
public sealed record PlanStep(string Phase, string Description, string? Sql = null)
{
    /// <summary>A shell command for the step, when it is one (an `osc alter` run).</summary>
    public string? Command { get; init; }
}
