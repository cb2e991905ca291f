namespace OnlineSchemaChange.Core.Cutover;

public sealed record CutoverOptions
{
    /// <summary>How long the lock on the original may be waited for, and so the longest any query waits on us.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>How long the replay may take to catch up while the table is locked before the attempt gives up.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(3);

    public int Attempts { get; init; } = 10;
}

/// <summary>How the swap went: how long writes to the table were held, and how many attempts it took.</summary>
public sealed record CutoverResult(TimeSpan WritesBlocked, int Attempts)
{
    /// <summary>What the operator should know about objects around the table (a constraint left NOT VALID, a view rebuilt or not).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>
    /// How long the successful attempt's lock request waited before it was granted: application statements queue
    /// behind a waiting request too, so this adds to what they feel, though the table was not yet held.
    /// </summary>
    public TimeSpan? LockWait { get; init; }

    /// <summary>Where <see cref="WritesBlocked"/> went, in order; the parts never add up to more than it (what is left is untimed).</summary>
    public IReadOnlyList<CutoverStep> Steps { get; init; } = [];
}

/// <summary>One part of the time the swap held the table locked.</summary>
public sealed record CutoverStep(string Name, TimeSpan Elapsed);
