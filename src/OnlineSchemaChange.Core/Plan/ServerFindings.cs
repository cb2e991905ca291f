namespace OnlineSchemaChange.Core.Plan;

/// <summary>One way of running the ALTER that the planner tried on the empty copy, and the server's answer.</summary>
public sealed record PlanAttempt(string Sql, bool Accepted, string? ServerMessage);

/// <summary>A lock the ALTER takes on a table other than its own (a foreign key's referenced table, say).</summary>
public sealed record OtherTableLock(string Table, string Lock, bool BlocksWrites);

/// <summary>What the server did when the ALTER ran on an empty copy of the table.</summary>
public sealed record ServerFindings
{
    /// <summary>How the server runs it, in the engine's words: "ALGORITHM=INSTANT", "table rewrite", ...</summary>
    public required string Method { get; init; }

    public required bool RewritesTable { get; init; }

    public required bool ScansTable { get; init; }

    public required bool BuildsIndex { get; init; }

    /// <summary>The lock on the table while the work runs, in the engine's words.</summary>
    public required string Lock { get; init; }

    public required bool BlocksWrites { get; init; }

    public required bool BlocksReads { get; init; }

    public IReadOnlyList<OtherTableLock> OtherTables { get; init; } = [];

    public IReadOnlyList<PlanAttempt> Attempts { get; init; } = [];

    public ChangeRisk Risk =>
        !RewritesTable && !ScansTable && !BuildsIndex ? ChangeRisk.Instant
        : BlocksWrites || BlocksReads ? ChangeRisk.Blocking
        : ChangeRisk.Online;
}
