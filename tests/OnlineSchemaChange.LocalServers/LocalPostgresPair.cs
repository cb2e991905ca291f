namespace OnlineSchemaChange.LocalServers;

/// <summary>A throwaway PostgreSQL primary and streaming replica from the local binaries.</summary>
internal sealed class LocalPostgresPair : IServerPair
{
    private readonly CancellationTokenSource lifetime = new();
    private readonly OnceAsync<LocalPostgres> primary;
    private readonly OnceAsync<LocalPostgres> replica;

    public LocalPostgresPair(PostgresOptions options)
    {
        primary = new(token => LocalPostgres.StartAsync(options, token), lifetime.Token);
        replica = new(async token => await (await primary.GetAsync(token)).StartReplicaAsync(token), lifetime.Token);
    }

    public ServerSource Source => ServerSource.LocalBinaries;

    public async Task<string> PrimaryAsync(CancellationToken cancellationToken) => (await primary.GetAsync(cancellationToken)).ConnectionString;

    public async Task<string> ReplicaAsync(CancellationToken cancellationToken) => (await replica.GetAsync(cancellationToken)).ConnectionString;

    public async ValueTask DisposeAsync()
    {
        await lifetime.CancelAsync();
        if (await replica.StartedValueAsync() is { } startedReplica)
        {
            await startedReplica.DisposeAsync();
        }

        if (await primary.StartedValueAsync() is { } startedPrimary)
        {
            await startedPrimary.DisposeAsync();
        }

        lifetime.Dispose();
    }
}
