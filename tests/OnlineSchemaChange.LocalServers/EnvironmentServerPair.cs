namespace OnlineSchemaChange.LocalServers;

/// <summary>Servers someone else runs, given as connection strings in environment variables.</summary>
internal sealed class EnvironmentServerPair(string primaryVariable, string primary, string replicaVariable, string? replica) : IServerPair
{
    public ServerSource Source => ServerSource.Environment;

    public Task<string> PrimaryAsync(CancellationToken cancellationToken) => Task.FromResult(primary);

    public Task<string> ReplicaAsync(CancellationToken cancellationToken) =>
        replica is { Length: > 0 }
            ? Task.FromResult(replica)
            : Task.FromException<string>(new LocalServerException(
                $"{primaryVariable} is set but {replicaVariable} is not: set it to a replica of that server, " +
                "or unset both to have throwaway servers started."));

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
