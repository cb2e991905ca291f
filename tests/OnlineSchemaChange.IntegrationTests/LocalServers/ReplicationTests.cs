using System.Diagnostics;
using MySqlConnector;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.LocalServers;

/// <summary>Each replica really replicates its primary.</summary>
[Collection("servers")]
public sealed class ReplicationTests(ServersFixture servers)
{
    private static readonly TimeSpan ReplicationDeadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_row_written_on_the_MariaDb_primary_appears_on_its_replica()
    {
        var database = await servers.NewMySqlDatabaseAsync("replication");
        var name = new MySqlConnectionStringBuilder(database).Database;
        var marker = Guid.NewGuid().ToString();
        await using (var primary = new MySqlConnection(database))
        {
            await primary.OpenAsync();
            await new MySqlCommand("CREATE TABLE t (id INT PRIMARY KEY, marker VARCHAR(64) NOT NULL)", primary).ExecuteNonQueryAsync();
            var insert = new MySqlCommand("INSERT INTO t VALUES (1, @marker)", primary);
            insert.Parameters.AddWithValue("@marker", marker);
            await insert.ExecuteNonQueryAsync();
        }

        var onReplica = new MySqlConnectionStringBuilder(await servers.MySqlReplicaAsync()) { Database = name }.ConnectionString;
        var seen = await EventuallyAsync(async () =>
        {
            await using var replica = new MySqlConnection(onReplica);
            await replica.OpenAsync();
            return await new MySqlCommand("SELECT marker FROM t WHERE id = 1", replica).ExecuteScalarAsync() as string;
        });

        Assert.Equal(marker, seen);
    }

    [Fact]
    public async Task A_row_written_on_the_Postgres_primary_appears_on_its_replica()
    {
        var database = await servers.NewPostgresDatabaseAsync("replication");
        var name = new NpgsqlConnectionStringBuilder(database).Database;
        var marker = Guid.NewGuid().ToString();
        await using (var primary = new NpgsqlConnection(database))
        {
            await primary.OpenAsync();
            await new NpgsqlCommand("CREATE TABLE t (id int PRIMARY KEY, marker text NOT NULL)", primary).ExecuteNonQueryAsync();
            var insert = new NpgsqlCommand("INSERT INTO t VALUES (1, @marker)", primary);
            insert.Parameters.AddWithValue("marker", marker);
            await insert.ExecuteNonQueryAsync();
        }

        var onReplica = new NpgsqlConnectionStringBuilder(await servers.PostgresReplicaAsync()) { Database = name }.ConnectionString;
        var seen = await EventuallyAsync(async () =>
        {
            await using var replica = new NpgsqlConnection(onReplica);
            await replica.OpenAsync();
            Assert.True((bool)(await new NpgsqlCommand("SELECT pg_is_in_recovery()", replica).ExecuteScalarAsync())!);
            return await new NpgsqlCommand("SELECT marker FROM t WHERE id = 1", replica).ExecuteScalarAsync() as string;
        });

        Assert.Equal(marker, seen);
    }

    /// <summary>Replication is asynchronous: retry (the database or table may not exist there yet) until a value shows up.</summary>
    private static async Task<string?> EventuallyAsync(Func<Task<string?>> read)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await read() is { } value)
                {
                    return value;
                }
            }
            catch (System.Data.Common.DbException) when (clock.Elapsed < ReplicationDeadline)
            {
            }

            if (clock.Elapsed >= ReplicationDeadline)
            {
                return null;
            }

            await Task.Delay(50);
        }
    }
}
