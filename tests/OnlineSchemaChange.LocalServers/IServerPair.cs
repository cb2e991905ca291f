namespace OnlineSchemaChange.LocalServers;

/// <summary>A primary and its replica for one engine, each started on first use.</summary>
internal interface IServerPair : IAsyncDisposable
{
    ServerSource Source { get; }

    Task<string> PrimaryAsync(CancellationToken cancellationToken);

    /// <summary>Starts the primary too if need be.</summary>
    Task<string> ReplicaAsync(CancellationToken cancellationToken);
}
