using MySqlConnector;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.LocalServers;

/// <summary>The servers have what an online schema change relies on: row binlogs with full images and GTIDs, logical WAL.</summary>
[Collection("servers")]
public sealed class ServerSettingsTests(ServersFixture servers)
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MariaDb_logs_full_row_images_with_GTIDs(bool replica)
    {
        var server = replica ? await servers.MySqlReplicaAsync() : await servers.MySqlAsync();
        await using var connection = new MySqlConnection(server);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(
            "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@gtid_strict_mode, @@log_slave_updates, @@server_id", connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());

        Assert.Equal(1, reader.GetInt32(0));
        Assert.Equal("ROW", reader.GetString(1));
        Assert.Equal("FULL", reader.GetString(2));
        Assert.Equal(1, reader.GetInt32(3));
        Assert.Equal(1, reader.GetInt32(4));
        Assert.NotEqual(0L, reader.GetInt64(5));
    }

    [Fact]
    public async Task A_MariaDb_write_gets_a_GTID_from_the_primary_and_replica_ids_differ()
    {
        var database = await servers.NewMySqlDatabaseAsync("gtid");
        await using var primary = new MySqlConnection(database);
        await primary.OpenAsync();
        await new MySqlCommand("CREATE TABLE t (id INT PRIMARY KEY)", primary).ExecuteNonQueryAsync();
        await new MySqlCommand("INSERT INTO t VALUES (1)", primary).ExecuteNonQueryAsync();

        var primaryId = Convert.ToInt64(await new MySqlCommand("SELECT @@server_id", primary).ExecuteScalarAsync());
        var position = (string)(await new MySqlCommand("SELECT @@gtid_binlog_pos", primary).ExecuteScalarAsync())!;
        Assert.Matches($@"^0-{primaryId}-\d+$", position);

        await using var replica = new MySqlConnection(await servers.MySqlReplicaAsync());
        await replica.OpenAsync();
        Assert.NotEqual(primaryId, Convert.ToInt64(await new MySqlCommand("SELECT @@server_id", replica).ExecuteScalarAsync()));
    }

    [Fact]
    public async Task The_MariaDb_account_has_every_privilege_and_can_grant()
    {
        await using var connection = new MySqlConnection(await servers.MySqlAsync());
        await connection.OpenAsync();
        var grants = new List<string>();
        await using (var reader = await new MySqlCommand("SHOW GRANTS", connection).ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                grants.Add(reader.GetString(0));
            }
        }

        Assert.Contains(grants, g => g.StartsWith("GRANT ALL PRIVILEGES ON *.* TO `osc`@`%`", StringComparison.Ordinal) && g.EndsWith("WITH GRANT OPTION", StringComparison.Ordinal));

        // What a binlog reader needs, checked by using it rather than by reading the grant text.
        await new MySqlCommand("SHOW BINARY LOGS", connection).ExecuteNonQueryAsync();
        await new MySqlCommand("SHOW MASTER STATUS", connection).ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task MariaDb_is_reachable_only_as_the_test_account_over_tcp()
    {
        var builder = new MySqlConnectionStringBuilder(await servers.MySqlAsync());
        Assert.Equal("127.0.0.1", builder.Server);
        Assert.Equal("osc", builder.UserID);
        Assert.Equal("", builder.Database);

        // mariadb-install-db leaves password-less root accounts for 127.0.0.1; they must be gone.
        var root = new MySqlConnectionStringBuilder(builder.ConnectionString) { UserID = "root", Password = "", Pooling = false };
        await using var connection = new MySqlConnection(root.ConnectionString);
        await Assert.ThrowsAsync<MySqlException>(() => connection.OpenAsync());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Postgres_wal_level_is_logical_with_room_for_slots(bool replica)
    {
        var server = replica ? await servers.PostgresReplicaAsync() : await servers.PostgresAsync();
        await using var connection = new NpgsqlConnection(server);
        await connection.OpenAsync();

        Assert.Equal("logical", await ShowAsync(connection, "wal_level"));
        Assert.Equal("10", await ShowAsync(connection, "max_replication_slots"));
        Assert.Equal("10", await ShowAsync(connection, "max_wal_senders"));
        Assert.Equal("127.0.0.1", await ShowAsync(connection, "listen_addresses"));
        Assert.Equal(replica, (bool)(await new NpgsqlCommand("SELECT pg_is_in_recovery()", connection).ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task Postgres_account_is_a_superuser_that_can_create_a_logical_slot()
    {
        var database = await servers.NewPostgresDatabaseAsync("slots");
        Assert.Equal("osc", new NpgsqlConnectionStringBuilder(database).Username);
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        Assert.Equal("on", await ShowAsync(connection, "is_superuser"));

        var slot = "s_" + Guid.NewGuid().ToString("N")[..12];
        await new NpgsqlCommand($"SELECT pg_create_logical_replication_slot('{slot}', 'test_decoding')", connection).ExecuteNonQueryAsync();
        await new NpgsqlCommand($"SELECT pg_drop_replication_slot('{slot}')", connection).ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task New_databases_are_distinct_and_selected_by_the_connection_string()
    {
        var first = await servers.NewMySqlDatabaseAsync("Some-Prefix");
        var second = await servers.NewMySqlDatabaseAsync("Some-Prefix");
        Assert.NotEqual(new MySqlConnectionStringBuilder(first).Database, new MySqlConnectionStringBuilder(second).Database);
        Assert.StartsWith("some_prefix_", new MySqlConnectionStringBuilder(first).Database, StringComparison.Ordinal);
        await using (var connection = new MySqlConnection(first))
        {
            await connection.OpenAsync();
            Assert.Equal(new MySqlConnectionStringBuilder(first).Database, await new MySqlCommand("SELECT DATABASE()", connection).ExecuteScalarAsync());
        }

        var pg = await servers.NewPostgresDatabaseAsync("Some-Prefix");
        await using (var connection = new NpgsqlConnection(pg))
        {
            await connection.OpenAsync();
            Assert.Equal(new NpgsqlConnectionStringBuilder(pg).Database, await new NpgsqlCommand("SELECT current_database()", connection).ExecuteScalarAsync());
        }
    }

    private static async Task<string> ShowAsync(NpgsqlConnection connection, string setting) =>
        (string)(await new NpgsqlCommand($"SHOW {setting}", connection).ExecuteScalarAsync())!;
}
