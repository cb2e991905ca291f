namespace OnlineSchemaChange.Core.Plan;

/// <summary>One step of the recommended strategy: what to do, and the SQL when the step is SQL.</summary>
public sealed record PlanStep(string Phase, string Description, string? Sql = null)
{
    /// <summary>A shell command for the step, when it is one (an `osc alter` run).</summary>
    public string? Command { get; init; }

    /// <summary>
    /// The one step of <see cref="PlanStrategy.MaintenanceWindow"/>, the same on every engine: the native statement,
    /// <paramref name="sql"/>, already behind the engine's lock timeout.
    /// </summary>
    public static PlanStep MaintenanceWindow(ServerFindings findings, string sql)
    {
        ArgumentNullException.ThrowIfNull(findings);
        return new PlanStep("run natively in a maintenance window",
            $"No online way exists for this table, and the server's way blocks {(findings.BlocksReads ? "reads and writes" : "writes")} for the whole operation: "
            + "run it when the application can wait (or is stopped), with a lock timeout so that it never queues every later query behind a long transaction.",
            sql);
    }
}
