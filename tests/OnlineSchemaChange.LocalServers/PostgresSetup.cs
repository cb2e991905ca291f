using Npgsql;

namespace OnlineSchemaChange.LocalServers;

/// <summary>Checks shared by the local and the container PostgreSQL.</summary>
internal static class PostgresSetup
{
    /// <summary>Waits until the primary reports the standby named <paramref name="applicationName"/> as streaming.</summary>
    public static Task WaitStreamingAsync(
        string primaryConnectionString, string applicationName, TimeSpan timeout, Task<string>? replicaEnded, CancellationToken cancellationToken) =>
        Poll.UntilAsync($"pg_stat_replication on the primary shows '{applicationName}' streaming", async token =>
        {
            await using var connection = new NpgsqlConnection(primaryConnectionString);
            await connection.OpenAsync(token);
            await using var command = new NpgsqlCommand(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = @name AND state = 'streaming'", connection);
            command.Parameters.AddWithValue("name", applicationName);
            return (long)(await command.ExecuteScalarAsync(token))! > 0;
        }, timeout, replicaEnded, cancellationToken);

    public static Task WaitAcceptingAsync(string connectionString, TimeSpan timeout, Task<string>? serverEnded, CancellationToken cancellationToken) =>
        Poll.UntilAsync("postgres accepts connections", async token =>
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(token);
            return true;
        }, timeout, serverEnded, cancellationToken);

    /// <summary>A probe connection: unpooled, so a readiness loop leaves no idle sessions behind.</summary>
    public static string Unpooled(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 5 }.ConnectionString;
}
