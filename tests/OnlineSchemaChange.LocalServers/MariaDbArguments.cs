namespace OnlineSchemaChange.LocalServers;

/// <summary>The mariadbd settings every server of ours gets, local or in a container.</summary>
internal static class MariaDbArguments
{
    public static List<string> Common(MariaDbOptions options, int serverId)
    {
        List<string> arguments =
        [
            "--skip-name-resolve",
            $"--server-id={serverId}",
            "--log-bin=binlog",
            "--relay-log=relay-bin",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--gtid-strict-mode=ON",
            "--log-slave-updates=ON",
            $"--innodb-buffer-pool-size={options.BufferPoolSize}",
            $"--innodb-flush-log-at-trx-commit={(options.Durable ? 1 : 2)}",
            $"--sync-binlog={(options.Durable ? 1 : 0)}",
            "--max-allowed-packet=64M",
            "--performance-schema=OFF",
        ];
        arguments.AddRange(options.ExtraArguments);
        return arguments;
    }
}
