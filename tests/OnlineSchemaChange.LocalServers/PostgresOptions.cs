namespace OnlineSchemaChange.LocalServers;

/// <summary>How a throwaway PostgreSQL is started. The defaults favour speed over durability: the data is thrown away.</summary>
public sealed record PostgresOptions
{
    /// <summary>The server is stopped and its files deleted when this process ends (default: the current process).</summary>
    public int OwnerProcessId { get; init; } = Environment.ProcessId;

    /// <summary>The superuser initdb creates (scram-sha-256), used by the tests and by the replica to stream.</summary>
    public string User { get; init; } = "osc";

    public string Password { get; init; } = "osc";

    /// <summary>False: fsync, synchronous_commit and full_page_writes off.</summary>
    public bool Durable { get; init; }

    /// <summary>Extra settings passed as -c name=value; they override ours.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();

    /// <summary>Where initdb, postgres and pg_basebackup live (OSC_TEST_PG_BINDIR, else Debian's PostgreSQL 15).</summary>
    public string BinDirectory { get; init; } =
        Environment.GetEnvironmentVariable("OSC_TEST_PG_BINDIR") is { Length: > 0 } dir ? dir : "/usr/lib/postgresql/15/bin";

    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}
