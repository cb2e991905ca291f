namespace OnlineSchemaChange.Core.Plan;

/// <summary>How a native step holds the table.</summary>
public enum NativeStepLock
{
    /// <summary>A lock that queues the application's writes, held for a catalog change: run under the lock timeout, retried.</summary>
    Brief,

    /// <summary>Works alongside reads and writes (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT): no timeout, as long as it takes.</summary>
    Concurrent,
}

/// <summary>One statement of a non-blocking native form of an ALTER, as `osc alter` runs it and `osc plan` shows it.</summary>
public sealed record NativeStep(string Phase, string Description, string Sql, NativeStepLock Lock)
{
    /// <summary>
    /// Removes what this step leaves behind when it or a later step fails (a NOT VALID constraint that would go on
    /// checking new writes, the INVALID index a failed concurrent build leaves); null when it leaves nothing.
    /// </summary>
    public NativeStep? Undo { get; init; }
}
