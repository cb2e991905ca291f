namespace OnlineSchemaChange.Postgres.Plan;

/// <summary>PostgreSQL's table lock modes, weakest first, with what each blocks for ordinary traffic.</summary>
public sealed record PostgresLockMode(string PgLocksName, string Name, bool BlocksWrites, bool BlocksReads, int Strength)
{
    public static readonly IReadOnlyList<PostgresLockMode> All =
    [
        new("AccessShareLock", "ACCESS SHARE", false, false, 1),
        new("RowShareLock", "ROW SHARE", false, false, 2),
        new("RowExclusiveLock", "ROW EXCLUSIVE", false, false, 3),
        new("ShareUpdateExclusiveLock", "SHARE UPDATE EXCLUSIVE", false, false, 4),
        new("ShareLock", "SHARE", true, false, 5),
        new("ShareRowExclusiveLock", "SHARE ROW EXCLUSIVE", true, false, 6),
        new("ExclusiveLock", "EXCLUSIVE", true, false, 7),
        new("AccessExclusiveLock", "ACCESS EXCLUSIVE", true, true, 8),
    ];

    public static PostgresLockMode AccessExclusive => All[^1];

    public static PostgresLockMode ShareUpdateExclusive => All[3];

    public static PostgresLockMode? FromPgLocks(string mode) => All.FirstOrDefault(m => m.PgLocksName == mode);

    public string Describe() => BlocksReads ? $"{Name}: reads and writes wait"
        : BlocksWrites ? $"{Name}: reads continue, writes wait"
        : $"{Name}: reads and writes continue";
}
