using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.Postgres.Checkpoint;
using OnlineSchemaChange.Postgres.Throttle;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>The PostgreSQL throttle signals against the real primary and its streaming replica.</summary>
[Collection("servers")]
public sealed class PostgresThrottleTests(ServersFixture servers)
{
    [Fact]
    public async Task A_replica_whose_replay_is_paused_asks_for_a_pause_and_releases_it_once_replay_resumes()
    {
        string primary = await servers.PostgresAsync();
        string replica = await servers.PostgresReplicaAsync();
        await using HeartbeatTable heartbeat = await HeartbeatTable.StartAsync(primary, "lag_paused_osc_log");
        ThresholdSignal signal = PostgresThrottleSignals.ReplicaLag(primary, replica, heartbeat.Log, TimeSpan.FromMilliseconds(500));
        Assert.Null(await EventuallyAsync(signal, reason => reason is null));

        await ExecuteAsync(replica, "SELECT pg_wal_replay_pause()");
        try
        {
            string? paused = await EventuallyAsync(signal, reason => reason is not null);
            Assert.True(paused!.StartsWith("replica lag on", StringComparison.Ordinal) && paused.Contains("above 500", StringComparison.Ordinal), paused);
            Assert.True(signal.LastValue > 500, $"the lag shown in progress: {signal.LastValue}");
        }
        finally
        {
            await ExecuteAsync(replica, "SELECT pg_wal_replay_resume()");
        }

        Assert.Null(await EventuallyAsync(signal, reason => reason is null));
        Assert.True(signal.LastValue <= 500, $"the lag shown in progress: {signal.LastValue}");
    }

    [Fact]
    public async Task A_replica_cut_off_from_the_primary_lags_by_the_heartbeats_age_though_it_replayed_all_it_received()
    {
        string primary = await servers.PostgresAsync();
        string replica = await servers.PostgresReplicaAsync();
        await using HeartbeatTable heartbeat = await HeartbeatTable.StartAsync(primary, "lag_cut_off_osc_log");
        ThresholdSignal signal = PostgresThrottleSignals.ReplicaLag(primary, replica, heartbeat.Log, TimeSpan.FromMilliseconds(500));
        Assert.Null(await EventuallyAsync(signal, reason => reason is null));

        // Ending the standby's walsender again and again keeps its walreceiver from streaming: whatever it received
        // it has replayed, so its own positions say it is caught up.
        using var stop = new CancellationTokenSource();
        Task cutting = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await ExecuteAsync(primary, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication " +
                                            "WHERE pid NOT IN (SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active_pid IS NOT NULL)");
                await Task.Delay(50);
            }
        });
        try
        {
            string? paused = await EventuallyAsync(signal, reason => reason is not null);
            Assert.True(paused?.Contains("above 500", StringComparison.Ordinal) == true, paused);
            // Meanwhile the standby has replayed everything it received: by its own positions it is caught up.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (await ScalarAsync(replica, "SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()") != "True")
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the standby did not replay what it had received");
                await Task.Delay(50);
            }

            Assert.Contains("above 500", await signal.CheckAsync(CancellationToken.None), StringComparison.Ordinal);
        }
        finally
        {
            await stop.CancelAsync();
            await cutting;
        }

        Assert.Null(await EventuallyAsync(signal, reason => reason is null, attempts: 300));
    }

    [Fact]
    public async Task The_primarys_view_of_a_caught_up_replica_is_no_lag_and_a_primary_given_as_replica_is_reported()
    {
        string primary = await servers.PostgresAsync();
        await servers.PostgresReplicaAsync();

        Assert.Null(await EventuallyAsync(PostgresThrottleSignals.ReplicaLagOnPrimary(primary, TimeSpan.FromMilliseconds(1500)), reason => reason is null));
        string? notReplica = await PostgresThrottleSignals.ReplicaLag(primary, primary, new TableName("public", "t_osc_log"), TimeSpan.FromSeconds(1)).CheckAsync(CancellationToken.None);
        Assert.Contains("is not a replica", notReplica, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Load_counts_client_sessions_and_refuses_names_it_cannot_measure()
    {
        string primary = await servers.PostgresAsync();
        IReadOnlyList<ThresholdSignal> load = PostgresThrottleSignals.Load(primary, "sessions=0, active_sessions=1000", "--max-load");

        // This test's own session is not counted, but the fixture's and other tests' may be: sessions=0 holds only if some exist.
        Assert.Equal(2, load.Count);
        Assert.Null(await load[1].CheckAsync(CancellationToken.None));
        var error = Assert.Throws<OscException>(() => PostgresThrottleSignals.Load(primary, "Threads_running=5", "--max-load"));
        Assert.Contains("active_sessions", error.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_heartbeat_held_up_by_a_lock_asks_for_a_pause_until_writes_are_fast_again()
    {
        string primary = await servers.PostgresAsync();
        var log = new TableName("public", "heartbeat_probe_osc_log");
        await ExecuteAsync(primary, $"DROP TABLE IF EXISTS {log.Name}");
        await new PostgresCheckpointStore(primary, log).CreateAsync(CancellationToken.None);
        try
        {
            await using var heartbeat = PostgresHeartbeat.Create(primary, log, TimeSpan.FromMilliseconds(50));
            heartbeat.Start();
            ThresholdSignal signal = heartbeat.LatencySignal(TimeSpan.FromMilliseconds(300));
            Assert.Null(await EventuallyAsync(signal, reason => reason is null && heartbeat.Writes > 3));

            // A transaction holding the heartbeat's row makes the next beat wait, as a stalled commit would.
            await using (var blocker = new NpgsqlConnection(primary))
            {
                await blocker.OpenAsync();
                await using NpgsqlTransaction transaction = await blocker.BeginTransactionAsync();
                await using (var hold = new NpgsqlCommand($"SELECT * FROM {log.Name} WHERE id = {PostgresHeartbeat.HeartbeatId} FOR UPDATE", blocker, transaction))
                {
                    Assert.Equal(PostgresHeartbeat.HeartbeatId, Convert.ToInt32(await hold.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
                }

                string? paused = await EventuallyAsync(signal, reason => reason is not null);
                Assert.StartsWith("write latency is ", paused, StringComparison.Ordinal);
                await transaction.RollbackAsync();
            }

            // The slow beat ages out of the half-second window once writes are fast again.
            Assert.Null(await EventuallyAsync(signal, reason => reason is null));
        }
        finally
        {
            await ExecuteAsync(primary, $"DROP TABLE IF EXISTS {log.Name}");
        }
    }

    private static async Task<string?> EventuallyAsync(ThresholdSignal signal, Func<string?, bool> done, int attempts = 100)
    {
        string? reason = null;
        for (int i = 0; i < attempts; i++)
        {
            reason = await signal.CheckAsync(CancellationToken.None);
            if (done(reason))
            {
                return reason;
            }

            await Task.Delay(100);
        }

        return reason;
    }

    /// <summary>A bookkeeping table on the primary with the heartbeat writing to it; dropped on disposal.</summary>
    private sealed class HeartbeatTable : IAsyncDisposable
    {
        private readonly string _primary;
        private readonly TimedWriteLoop _heartbeat;

        private HeartbeatTable(string primary, TableName log, TimedWriteLoop heartbeat)
        {
            _primary = primary;
            Log = log;
            _heartbeat = heartbeat;
        }

        public TableName Log { get; }

        public static async Task<HeartbeatTable> StartAsync(string primary, string name)
        {
            var log = new TableName("public", name);
            await ExecuteAsync(primary, $"DROP TABLE IF EXISTS {name}");
            await new PostgresCheckpointStore(primary, log).CreateAsync(CancellationToken.None);
            TimedWriteLoop heartbeat = PostgresHeartbeat.Create(primary, log, TimeSpan.FromMilliseconds(100));
            heartbeat.Start();
            return new HeartbeatTable(primary, log, heartbeat);
        }

        public async ValueTask DisposeAsync()
        {
            await _heartbeat.DisposeAsync();
            await ExecuteAsync(_primary, $"DROP TABLE IF EXISTS {Log.Name}");
        }
    }
}
