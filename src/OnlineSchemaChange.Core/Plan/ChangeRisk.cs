namespace OnlineSchemaChange.Core.Plan;

/// <summary>What happens to the application if the ALTER runs natively, as the server itself reported it.</summary>
public enum ChangeRisk
{
    /// <summary>Catalog change only: a brief lock, no rows touched, whatever the table size.</summary>
    Instant,

    /// <summary>Work proportional to the table, but reads and writes go on meanwhile.</summary>
    Online,

    /// <summary>Work proportional to the table under a lock that blocks writes (and maybe reads) the whole time.</summary>
    Blocking,
}

/// <summary>What the plan recommends; each maps to a documented exit code for scripts.</summary>
public enum PlanStrategy
{
    /// <summary>Run the ALTER as it is, with a lock timeout and retries. Exit code 0.</summary>
    RunNatively,

    /// <summary>Run a non-blocking form of the same change (CONCURRENTLY, NOT VALID + VALIDATE, ...). Exit code 0.</summary>
    RunSafeVariant,

    /// <summary>Rebuild online with `osc alter`: shadow table, chunked copy, replay, atomic cut-over. Exit code 2.</summary>
    OnlineRebuild,

    /// <summary>The application sees the change: split it into expand, dual-write, backfill, switch reads, contract. Exit code 3.</summary>
    ExpandContract,

    /// <summary>
    /// No online way: the server's ALTER blocks writes for its whole run, and `osc alter` cannot rebuild this table (the
    /// notes say why: history, partitions, inheritance). Run it natively when writes may wait. Exit code 4.
    /// </summary>
    MaintenanceWindow,
}

public static class PlanExitCodes
{
    public const int Safe = 0;
    public const int Error = 1;
    public const int NeedsOnlineRebuild = 2;
    public const int NeedsExpandContract = 3;
    public const int NeedsMaintenanceWindow = 4;

    public static int For(PlanStrategy strategy) => strategy switch
    {
        PlanStrategy.RunNatively or PlanStrategy.RunSafeVariant => Safe,
        PlanStrategy.OnlineRebuild => NeedsOnlineRebuild,
        PlanStrategy.ExpandContract => NeedsExpandContract,
        PlanStrategy.MaintenanceWindow => NeedsMaintenanceWindow,
        _ => throw new ArgumentOutOfRangeException(nameof(strategy)),
    };
}
