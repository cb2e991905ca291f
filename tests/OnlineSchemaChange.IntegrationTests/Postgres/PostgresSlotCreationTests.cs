using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>A new logical slot waits for the transactions open before it: the run must say for whom, then go on.</summary>
[Collection("servers")]
public sealed class PostgresSlotCreationTests(ServersFixture servers)
{
    [Fact]
    public async Task A_transaction_left_open_holds_the_slot_back_and_the_run_names_it_then_completes_once_it_ends()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("slot_wait");
        string uri = PgSql.OscUri(connectionString);
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL);
            INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;
            CREATE TABLE other (id int);
            """);
        await using var idle = new NpgsqlConnection(connectionString);
        await idle.OpenAsync();
        await using NpgsqlTransaction open = await idle.BeginTransactionAsync();
        await new NpgsqlCommand("INSERT INTO other VALUES (1) /* left open by the application */", idle, open).ExecuteNonQueryAsync();

        LiveOscRun run = LiveOscRun.Start("alter", uri, "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute", "--json");
        JsonElement waiting = await run.WaitForThrottledAsync($"pid {idle.ProcessID} ", TimeSpan.FromSeconds(60));
        Assert.Equal("creating the replication slot", waiting.GetProperty("state").GetString());
        Assert.Contains("left open by the application", waiting.GetProperty("throttled").GetString(), StringComparison.Ordinal);
        Assert.False(run.Completion.IsCompleted);

        await open.RollbackAsync();
        OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(120));
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("bigint", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
    }
}
