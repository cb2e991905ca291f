namespace OnlineSchemaChange.LocalServers;

/// <summary>Where <see cref="TestDatabases"/> got an engine's servers from, in the order it tries them.</summary>
public enum ServerSource
{
    /// <summary>Connection strings in OSC_TEST_MYSQL(_REPLICA) / OSC_TEST_POSTGRES(_REPLICA).</summary>
    Environment,

    /// <summary>Testcontainers, when a Docker engine answers.</summary>
    Containers,

    /// <summary>Throwaway servers from the Debian binaries on this machine.</summary>
    LocalBinaries,
}
