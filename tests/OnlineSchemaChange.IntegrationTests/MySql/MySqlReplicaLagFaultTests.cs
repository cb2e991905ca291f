using System.Globalization;
using System.Text.Json;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using Xunit.Abstractions;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>A replica falls behind (its SQL thread stopped) while `osc alter --execute` copies: the copy waits for it.</summary>
[Collection("servers")]
public sealed class MySqlReplicaLagFaultTests(ServersFixture servers, ITestOutputHelper output)
{
    [Fact]
    public async Task The_copy_pauses_while_a_listed_replica_lags_and_completes_once_it_catches_up()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "replica_lag", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_3000;
            """);
        var replica = new MySqlConnectionStringBuilder(await servers.MySqlReplicaAsync()) { Database = db.Name };
        string replicaUri = $"mysql://{replica.Server}:{replica.Port}";
        await AssertThrottledByLagThenCompletesAsync(db, replica.ConnectionString, $"replica lag on {replica.Server}:{replica.Port}", "--replica", replicaUri);
    }

    [Fact]
    public async Task Without_replica_the_primary_s_replicas_are_discovered_and_their_lag_pauses_the_copy()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "replica_discovery", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
            INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_3000;
            """);
        var replica = new MySqlConnectionStringBuilder(await servers.MySqlReplicaAsync()) { Database = db.Name };
        await AssertThrottledByLagThenCompletesAsync(db, replica.ConnectionString, $"replica lag on 127.0.0.1:{replica.Port}");
    }

    [Fact]
    public async Task Discovery_finds_the_replica_by_its_reported_address_and_the_opt_out_watches_none()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "replica_discovery", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL);
            INSERT INTO t SELECT seq, seq FROM seq_1_to_100;
            """);
        var replica = new MySqlConnectionStringBuilder(await servers.MySqlReplicaAsync());
        var primary = new MySqlConnectionStringBuilder(db.ConnectionString);
        var target = new OnlineSchemaChange.Core.Connection.ConnectionTarget(OnlineSchemaChange.Core.Connection.DatabaseEngine.MySql, primary.Server, (int)primary.Port, primary.UserID, db.Name)
        {
            Password = primary.Password,
        };

        var found = await OnlineSchemaChange.MySql.Throttle.MySqlReplicaDiscovery.DiscoverAsync(target, CancellationToken.None);
        output.WriteLine(string.Join("; ", found.Notes));
        Assert.Contains(found.Replicas, r => r.Host == "127.0.0.1" && r.Port == (int)replica.Port);
        Assert.DoesNotContain(found.Replicas, r => r.Port == (int)primary.Port);

        OscRunner.Result discovered = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json");
        Assert.True(discovered.ExitCode == 0, discovered.Stderr);
        JsonElement replicas = LiveOscRun.ParseAll(discovered.Stdout)[0];
        Assert.Equal("replicas", replicas.GetProperty("event").GetString());
        Assert.Contains($"127.0.0.1:{replica.Port}", replicas.GetProperty("watched").EnumerateArray().Select(w => w.GetString()));

        await ExecuteAsync(db.ConnectionString, "DROP TABLE t_osc_old");
        OscRunner.Result optedOut = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k INT NOT NULL", "--execute", "--json", "--no-replica-discovery");
        Assert.True(optedOut.ExitCode == 0, optedOut.Stderr);
        Assert.DoesNotContain(LiveOscRun.ParseAll(optedOut.Stdout), e => e.GetProperty("event").GetString() == "replicas");
    }

    /// <summary>
    /// Holds the copy with the flag file until the replica shows our heartbeat, stops the replica's SQL thread, lifts
    /// the flag: the progress lines must then show the lag as the reason and rows copied must stop growing, until the
    /// SQL thread runs again and the migration completes.
    /// </summary>
    internal async Task AssertThrottledByLagThenCompletesAsync(OscTestDatabase db, string replicaConnectionString, string expectedReason, params string[] replicaArgs)
    {
        using var flag = new FlagFile("lag");
        try
        {
            LiveOscRun run = LiveOscRun.Start(["alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json",
                "--max-lag-millis", "500", "--throttle-flag-file", flag.Path, .. replicaArgs]);
            await run.WaitForEventAsync(e => Reason(e).Contains("flag file", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "the flag file to hold the copy");
            await WaitForHeartbeatAsync(replicaConnectionString, run, lag => lag < 300, "the replica to show a fresh heartbeat");

            await ExecuteAsync(replicaConnectionString, "STOP SLAVE SQL_THREAD");
            await WaitForHeartbeatAsync(replicaConnectionString, run, lag => lag > 1000, "the replica to lag more than 1 s");
            flag.Lift();
            JsonElement first = await run.WaitForEventAsync(e => Reason(e).StartsWith(expectedReason, StringComparison.Ordinal), TimeSpan.FromSeconds(30),
                $"a progress line throttled by '{expectedReason}'");
            await Task.Delay(TimeSpan.FromSeconds(2.5));
            var paused = run.JsonEvents.Where(e => Reason(e).StartsWith(expectedReason, StringComparison.Ordinal)).ToList();
            output.WriteLine($"{paused.Count} progress lines paused by lag; first: {first}");
            Assert.True(paused.Count >= 2, "the copy stays paused while the replica lags");
            Assert.All(paused, e => Assert.Equal(first.GetProperty("rowsCopied").GetInt64(), e.GetProperty("rowsCopied").GetInt64()));
            // Progress shows the lag itself, above the limit that holds the copy.
            Assert.All(paused, e => Assert.True(e.GetProperty("replicaLagMillis").GetDouble() > 500, $"replicaLagMillis in {e}"));
            Assert.False(run.Completion.IsCompleted);

            await ExecuteAsync(replicaConnectionString, "START SLAVE SQL_THREAD");
            OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(90));
            Assert.True(result.ExitCode == 0, result.Stderr);
            JsonElement done = LiveOscRun.ParseAll(result.Stdout)[^1];
            Assert.Equal("done", done.GetProperty("event").GetString());
            Assert.Equal(3000, done.GetProperty("rowsCopied").GetInt64());

            // Once the copy has finished, progress no longer reports a pause that only applied to it.
            JsonElement last = LiveOscRun.ParseAll(result.Stdout).Last(e => e.GetProperty("event").GetString() == "progress");
            Assert.NotEqual("copying", last.GetProperty("state").GetString());
            Assert.Equal("", Reason(last));
            Assert.Equal("bigint(20)", await ScalarAsync(db.ConnectionString, "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
            Assert.Equal("3000", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t"));
        }
        finally
        {
            await ExecuteAsync(replicaConnectionString, "START SLAVE SQL_THREAD");
        }
    }

    private static string Reason(JsonElement e) =>
        e.TryGetProperty("throttled", out JsonElement r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";

    private static async Task WaitForHeartbeatAsync(string replicaConnectionString, LiveOscRun run, Func<double, bool> lagIs, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            Assert.False(run.Completion.IsCompleted, "osc ended early");
            try
            {
                string lag = await ScalarAsync(replicaConnectionString, "SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) / 1000 FROM t_osc_log WHERE id = 1");
                if (lag.Length > 0 && lagIs(double.Parse(lag, CultureInfo.InvariantCulture)))
                {
                    return;
                }
            }
            catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchTable)
            {
                // Not replicated yet.
            }

            await Task.Delay(50);
        }
    }
}
