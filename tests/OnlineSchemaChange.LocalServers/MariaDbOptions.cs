namespace OnlineSchemaChange.LocalServers;

/// <summary>How a throwaway MariaDB is started. The defaults favour speed over durability: the data is thrown away.</summary>
public sealed record MariaDbOptions
{
    /// <summary>The server is stopped and its files deleted when this process ends (default: the current process).</summary>
    public int OwnerProcessId { get; init; } = Environment.ProcessId;

    /// <summary>The account created with all privileges (replication included) and grant option, for '%' and localhost.</summary>
    public string User { get; init; } = "osc";

    public string Password { get; init; } = "osc";

    /// <summary>False: innodb_flush_log_at_trx_commit=2 and sync_binlog=0. True: 1 and 1.</summary>
    public bool Durable { get; init; }

    public string BufferPoolSize { get; init; } = "64M";

    /// <summary>Extra mariadbd arguments, e.g. "--max-connections=500"; later arguments override earlier ones.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}
