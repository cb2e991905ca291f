using MySqlConnector;

namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>A fresh MariaDB database set up with a script, as a connection string and as the URI `osc` takes.</summary>
public sealed record OscTestDatabase(string ConnectionString, string Uri)
{
    public string Name => new MySqlConnectionStringBuilder(ConnectionString).Database;

    public static async Task<OscTestDatabase> CreateAsync(ServersFixture servers, string prefix, string setup)
    {
        ArgumentNullException.ThrowIfNull(servers);
        // Unpooled: a pool per test database would keep its idle connections open for minutes, and a run creates many.
        string connectionString = new MySqlConnectionStringBuilder(await servers.NewMySqlDatabaseAsync(prefix)) { Pooling = false }.ConnectionString;
        if (setup.Length > 0)
        {
            await MySqlTestSql.ExecuteAsync(connectionString, setup);
        }

        var b = new MySqlConnectionStringBuilder(connectionString);
        return new OscTestDatabase(connectionString, $"mysql://{b.UserID}:{b.Password}@{b.Server}:{b.Port}/{b.Database}");
    }

    /// <summary>The tables a migration of t creates, left over: none after any run, success or failure, but t_osc_old after a swap.</summary>
    public Task<string> OscTablesAsync(string table = "t") => MySqlTestSql.ScalarAsync(ConnectionString,
        $"SELECT COALESCE(GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME), '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '{table}\\_osc\\_%'");
}
