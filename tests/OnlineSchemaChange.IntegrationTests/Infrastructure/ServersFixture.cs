using System.Diagnostics.CodeAnalysis;
using OnlineSchemaChange.LocalServers;

namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>
/// The servers of the "servers" collection (see <see cref="TestDatabases"/> for where they come from). Nothing starts
/// until a test asks, so a run that needs only PostgreSQL never starts MariaDB.
/// </summary>
[SuppressMessage("Design", "CA1001", Justification = "xUnit disposes it through IAsyncLifetime.DisposeAsync.")]
public sealed class ServersFixture : IAsyncLifetime
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(3);

    private readonly TestDatabases databases = new();

    public TestDatabases Databases => databases;

    /// <summary>MariaDB primary: Server=127.0.0.1, its port, User ID=osc, Password=osc, no database.</summary>
    public Task<string> MySqlAsync() => WithTimeoutAsync(databases.MySqlAsync);

    public Task<string> MySqlReplicaAsync() => WithTimeoutAsync(databases.MySqlReplicaAsync);

    /// <summary>PostgreSQL primary: Host=127.0.0.1, its port, Username=osc, Password=osc, Database=postgres.</summary>
    public Task<string> PostgresAsync() => WithTimeoutAsync(databases.PostgresAsync);

    public Task<string> PostgresReplicaAsync() => WithTimeoutAsync(databases.PostgresReplicaAsync);

    /// <summary>A fresh database named from <paramref name="prefix"/> on the MariaDB primary; the connection string selects it.</summary>
    public Task<string> NewMySqlDatabaseAsync(string prefix) => WithTimeoutAsync(token => databases.CreateMySqlDatabaseAsync(prefix, token));

    /// <summary>A fresh database named from <paramref name="prefix"/> (from template0) on the PostgreSQL primary; the connection string selects it.</summary>
    public Task<string> NewPostgresDatabaseAsync(string prefix) => WithTimeoutAsync(token => databases.CreatePostgresDatabaseAsync(prefix, token));

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await databases.DisposeAsync();

    // A hung start fails the test that waits on it rather than the whole run hanging.
    private static async Task<string> WithTimeoutAsync(Func<CancellationToken, Task<string>> call)
    {
        using var timeout = new CancellationTokenSource(StartTimeout);
        return await call(timeout.Token);
    }
}
