using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>
/// The streaming replica's replay is paused (pg_wal_replay_pause) while `osc alter --execute` copies: the copy waits
/// until it replays again, whether the replica is listed with --replica or seen from the primary.
/// </summary>
[Collection("servers")]
public sealed class PostgresReplicaLagFaultTests(ServersFixture servers, ITestOutputHelper output)
{
    [Fact]
    public async Task The_copy_pauses_while_a_listed_replica_s_replay_is_paused_and_completes_once_it_resumes()
    {
        var replica = new NpgsqlConnectionStringBuilder(await servers.PostgresReplicaAsync());
        await AssertThrottledByLagThenCompletesAsync(replica.ConnectionString, $"replica lag on {replica.Host}:{replica.Port}",
            "--replica", $"postgres://{replica.Host}:{replica.Port}");
    }

    [Fact]
    public async Task Without_replica_the_primary_s_view_of_its_standby_pauses_the_copy()
    {
        await AssertThrottledByLagThenCompletesAsync(await servers.PostgresReplicaAsync(), "replica lag (pg_stat_replication)");
    }

    private async Task AssertThrottledByLagThenCompletesAsync(string replica, string expectedReason, params string[] replicaArgs)
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("replica_lag");
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL, c text);
            INSERT INTO t SELECT g, g % 97, 'row-' || g FROM generate_series(1, 3000) g;
            CREATE TABLE lag_probe (id int);
            """);
        using var flag = new FlagFile("pg-lag");
        try
        {
            LiveOscRun run = LiveOscRun.Start(["alter", OscUri(connectionString), "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute", "--json",
                "--native", "off", "--max-lag-millis", "500", "--throttle-flag-file", flag.Path, .. replicaArgs]);
            await run.WaitForThrottledAsync("flag file", TimeSpan.FromSeconds(60));

            await ExecuteAsync(replica, "SELECT pg_wal_replay_pause()");
            // WAL the replica receives and does not replay: its lag grows from here.
            for (int i = 0; i < 30 && !run.Completion.IsCompleted; i++)
            {
                await ExecuteAsync(connectionString, $"INSERT INTO lag_probe VALUES ({i})");
                await Task.Delay(100);
            }

            flag.Lift();
            JsonElement first = await run.WaitForEventAsync(e => Reason(e).StartsWith(expectedReason, StringComparison.Ordinal), TimeSpan.FromSeconds(60),
                $"a progress line throttled by '{expectedReason}'");
            await Task.Delay(TimeSpan.FromSeconds(2.5));
            var paused = run.JsonEvents.Where(e => Reason(e).StartsWith(expectedReason, StringComparison.Ordinal)).ToList();
            output.WriteLine($"{paused.Count} progress lines paused by lag; first: {first}");
            Assert.True(paused.Count >= 2, "the copy stays paused while the replica does not replay");
            Assert.All(paused, e => Assert.Equal(first.GetProperty("rowsCopied").GetInt64(), e.GetProperty("rowsCopied").GetInt64()));
            Assert.False(run.Completion.IsCompleted);

            await ExecuteAsync(replica, "SELECT pg_wal_replay_resume()");
            OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(90));
            Assert.True(result.ExitCode == 0, result.Stderr);
            JsonElement done = LiveOscRun.ParseAll(result.Stdout)[^1];
            Assert.Equal("done", done.GetProperty("event").GetString());
            Assert.Equal(3000, done.GetProperty("rowsCopied").GetInt64());
            Assert.Equal("bigint", await ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
            Assert.Equal("", await LeftoversAsync(connectionString));
        }
        finally
        {
            await ExecuteAsync(replica, "SELECT pg_wal_replay_resume()");
        }
    }

    private static string Reason(JsonElement e) =>
        e.TryGetProperty("throttled", out JsonElement r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
}
