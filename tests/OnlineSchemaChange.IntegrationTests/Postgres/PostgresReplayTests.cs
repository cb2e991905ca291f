using System.Threading.Channels;
using Npgsql;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.Postgres.Apply;
using OnlineSchemaChange.Postgres.Replication;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>
/// The slot's stream on a real PostgreSQL 15: what the feed passes on, and the replay into a shadow table converging
/// with the original through key changes, updates that leave TOASTed values unsent, deletes, multi-statement
/// transactions, and the replication connection killed mid-stream.
/// </summary>
[Collection("servers")]
public sealed class PostgresReplayTests(ServersFixture servers) : IAsyncLifetime
{
    // Large enough to be stored out of line (STORAGE EXTERNAL: no compression), so an update that does not touch
    // them sends them as "unchanged TOAST".
    private static readonly string Big = string.Concat(Enumerable.Repeat("0123456789abcdef", 400));

    private string _connectionString = "";
    private PostgresReplicationNames _names = null!;
    private readonly List<PostgresReplay> _replays = [];

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewPostgresDatabaseAsync("stream");
        _names = new PostgresReplicationNames(new NpgsqlConnectionStringBuilder(_connectionString).Database!, new TableName("public", "t"));
        await ExecuteAsync(_connectionString, """
            CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL, note text, doc jsonb, blob bytea);
            ALTER TABLE t ALTER COLUMN note SET STORAGE EXTERNAL, ALTER COLUMN doc SET STORAGE EXTERNAL, ALTER COLUMN blob SET STORAGE EXTERNAL;
            INSERT INTO t SELECT g, g, 'row ' || g, NULL, NULL FROM generate_series(1, 200) g;
            CREATE TABLE t_osc_new (LIKE t INCLUDING ALL);
            """);
    }

    public async Task DisposeAsync()
    {
        foreach (PostgresReplay replay in _replays)
        {
            await replay.DisposeAsync();
        }

        await PostgresReplicationSlot.DropAsync(_connectionString, _names, CancellationToken.None);
        Assert.Equal("", await LeftoversAsync(_connectionString));
    }

    [Fact]
    public async Task The_feed_passes_on_each_row_change_keyed_and_each_commit_once_with_unsent_toast_marked()
    {
        await PostgresReplicationSlot.CreateAsync(_connectionString, _names, CancellationToken.None);
        // One call per transaction: statements sent together share one.
        foreach (string transaction in new[]
        {
            $$"""INSERT INTO t VALUES (1000, 1, '{{Big}}', '{"a": "{{Big}}"}', convert_to('{{Big}}', 'UTF8'));""",
            $$"""UPDATE t SET k = 2 WHERE id = 1000;""",
            $$"""BEGIN; UPDATE t SET id = 1001 WHERE id = 1000; DELETE FROM t WHERE id = 5; COMMIT;""",
            $$"""UPDATE t SET note = 'small' WHERE id = 1001;""",
        })
        {
            await ExecuteAsync(_connectionString, transaction);
        }
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        var feed = new PostgresChangeFeed(_connectionString, _names, ["id", "k", "note", "doc", "blob"], ["id"], () => null);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Task running = feed.RunAsync(channel.Writer, stop.Token);

        var messages = new List<ReplicationMessage>();
        while (messages.OfType<PositionMessage>().Count() < 4)
        {
            messages.Add(await channel.Reader.ReadAsync(stop.Token));
        }

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        var changes = messages.OfType<RowChangeMessage>().Select(m => m.Change).ToList();
        Assert.Equal(5, changes.Count);
        Assert.Equal(RowChangeKind.Insert, changes[0].Kind);
        Assert.Equal(new RowKey(1000L), changes[0].Key);
        Assert.Equal(Big, changes[0].Row![2]);
        Assert.Equal("\\x" + Convert.ToHexStringLower(System.Text.Encoding.UTF8.GetBytes(Big)), changes[0].Row![4]);

        // An update that did not touch the TOASTed columns: they are marked unchanged, never null.
        Assert.Equal(RowChangeKind.Update, changes[1].Kind);
        Assert.Equal("2", changes[1].Row![1]);
        Assert.Equal([UnchangedValue.Instance, UnchangedValue.Instance, UnchangedValue.Instance], changes[1].Row!.Skip(2));
        Assert.False(changes[1].MovesKey);

        Assert.True(changes[2].MovesKey);
        Assert.Equal(new RowKey(1000L), changes[2].PreviousKey);
        Assert.Equal(new RowKey(1001L), changes[2].Key);
        Assert.Equal(RowChange.Delete(new RowKey(5L)), changes[3]);
        Assert.Equal("small", changes[4].Row![2]);
        Assert.IsType<UnchangedValue>(changes[4].Row![3]);

        // One position per transaction, after its rows, increasing.
        var positions = messages.Select((m, i) => (m, i)).Where(x => x.m is PositionMessage).Select(x => x.i).ToList();
        Assert.Equal([1, 3, 6, 8], positions);
        var lsns = messages.OfType<PositionMessage>().Select(p => p.Position).ToList();
        Assert.Equal(lsns.Order(), lsns);
    }

    [Fact]
    public async Task A_slot_a_walsender_still_holds_is_dropped_once_it_has_left()
    {
        await PostgresReplicationSlot.CreateAsync(_connectionString, _names, CancellationToken.None);
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        var feed = new PostgresChangeFeed(_connectionString, _names, ["id", "k", "note", "doc", "blob"], ["id"], () => null);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Task streaming = feed.RunAsync(channel.Writer, stop.Token);
        await ExecuteAsync(_connectionString, "UPDATE t SET k = k + 1 WHERE id = 1");
        await channel.Reader.ReadAsync(stop.Token);
        Assert.Equal("True", await ScalarAsync(_connectionString, $"SELECT active FROM pg_replication_slots WHERE slot_name = '{_names.Slot}'"));

        // The walsender leaves a moment after it is ended: the drop must wait for it, not skip the slot as active.
        IReadOnlyList<string> dropped = await PostgresReplicationSlot.DropAsync(_connectionString, _names, stop.Token);

        Assert.Contains("replication slot " + _names.Slot, dropped);
        Assert.Equal("0", await ScalarAsync(_connectionString, $"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{_names.Slot}'"));
        await stop.CancelAsync();
        await streaming.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task The_position_a_drain_aims_at_is_past_every_commit_made_before_it_even_with_synchronous_commit_off()
    {
        await PostgresReplicationSlot.CreateAsync(_connectionString, _names, CancellationToken.None);
        // An asynchronous commit is visible at once, while the WAL writer writes its record up to wal_writer_delay
        // later: the write position (pg_current_wal_lsn) read next is then short of it, and a drain to it could end
        // before the commit is applied. Each target is read on another connection once the commit has returned.
        await using var writer = new NpgsqlConnection(_connectionString);
        await writer.OpenAsync();
        await using var reader = new NpgsqlConnection(_connectionString);
        await reader.OpenAsync();
        await using (var async = new NpgsqlCommand("SET synchronous_commit = off", writer))
        {
            await async.ExecuteNonQueryAsync();
        }

        const int commits = 10;
        var targets = new List<PostgresLsnPosition>();
        for (int i = 0; i < commits; i++)
        {
            await using (var insert = new NpgsqlCommand($"INSERT INTO t VALUES ({2000 + i}, {i}, 'async', NULL, NULL)", writer))
            {
                await insert.ExecuteNonQueryAsync();
            }

            targets.Add(await PostgresReplay.CurrentPositionAsync(reader, CancellationToken.None));
        }

        // The stream sends only flushed WAL: one synchronous commit flushes the ten.
        await ExecuteAsync(_connectionString, "SET synchronous_commit = on; INSERT INTO t VALUES (3000, 0, 'flush', NULL, NULL)");
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        var feed = new PostgresChangeFeed(_connectionString, _names, ["id", "k", "note", "doc", "blob"], ["id"], () => null);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Task running = feed.RunAsync(channel.Writer, stop.Token);
        var ends = new List<ReplicationPosition>();
        while (ends.Count < commits)
        {
            if (await channel.Reader.ReadAsync(stop.Token) is PositionMessage position)
            {
                ends.Add(position.Position);
            }
        }

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        for (int i = 0; i < commits; i++)
        {
            Assert.True(targets[i].CompareTo(ends[i]) >= 0, $"commit {i} ends at {ends[i]}, after the position {targets[i]} read once it had returned");
        }
    }

    [Fact]
    public async Task Replay_converges_through_key_changes_unsent_toast_values_deletes_and_multi_statement_transactions()
    {
        PostgresReplay replay = await StartAsync();
        await ExecuteAsync(_connectionString, $$"""
            UPDATE t SET note = '{{Big}}', doc = '{"d": "{{Big}}"}', blob = convert_to('{{Big}}', 'UTF8') WHERE id <= 20;
            UPDATE t SET k = k + 1000 WHERE id <= 10;
            UPDATE t SET id = id + 5000 WHERE id BETWEEN 6 AND 8;
            BEGIN; UPDATE t SET k = -1 WHERE id = 11; UPDATE t SET id = 7000 WHERE id = 11; UPDATE t SET k = -2 WHERE id = 7000; COMMIT;
            BEGIN; INSERT INTO t VALUES (9000, 1, '{{Big}}', NULL, NULL); UPDATE t SET k = 2 WHERE id = 9000; UPDATE t SET id = 9001 WHERE id = 9000; COMMIT;
            DELETE FROM t WHERE id IN (12, 150);
            UPDATE t SET doc = '{"changed": true}' WHERE id = 13;
            UPDATE t SET note = NULL WHERE id = 14;
            """);
        await DrainAsync(replay);

        Assert.Equal(0, await DifferenceAsync(_connectionString, "t", "t_osc_new"));
        Assert.Equal(Big, await ScalarAsync(_connectionString, "SELECT note FROM t_osc_new WHERE id = 7000"));
        Assert.Equal(Big, await ScalarAsync(_connectionString, "SELECT doc->>'d' FROM t_osc_new WHERE id = 5006"));
        Assert.True(replay.Applier.ChangesReceived >= 20 + 10 + 3 + 3 + 3 + 2 + 2);
    }

    [Fact]
    public async Task A_moved_row_whose_unsent_values_never_reached_the_shadow_is_read_again_from_the_original()
    {
        await ExecuteAsync(_connectionString, $"UPDATE t SET note = '{Big}' WHERE id = 3");
        // The copy has not reached id 3 (the shadow lacks it) when the stream moves it with its TOAST value unsent.
        await ExecuteAsync(_connectionString, "DELETE FROM t_osc_new WHERE id = 3");
        PostgresReplay replay = await StartAsync(copy: false);
        await ExecuteAsync(_connectionString, "UPDATE t SET id = 3333, k = 7 WHERE id = 3");
        await DrainAsync(replay);

        Assert.Equal(Big, await ScalarAsync(_connectionString, "SELECT note FROM t_osc_new WHERE id = 3333"));
        Assert.Equal("0", await ScalarAsync(_connectionString, "SELECT count(*) FROM t_osc_new WHERE id = 3"));
    }

    [Fact]
    public async Task A_truncate_of_the_original_stops_the_replay_with_a_clear_error()
    {
        PostgresReplay replay = await StartAsync();
        await ExecuteAsync(_connectionString, "INSERT INTO t VALUES (500, 1, 'x', NULL, NULL); TRUNCATE t");

        var error = await Assert.ThrowsAsync<OnlineSchemaChange.Core.Migration.TableChangedException>(() => replay.Failed.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
        Assert.NotNull(error.Hint);
    }

    [Fact]
    public async Task Killing_the_walsender_mid_stream_reconnects_from_the_slot_and_loses_or_repeats_nothing()
    {
        PostgresReplay replay = await StartAsync(feedOptions: new PostgresChangeFeedOptions { ReconnectDelay = TimeSpan.FromMilliseconds(50) });
        int rowChanges = 0;
        using var stop = new CancellationTokenSource();
        Task writes = Task.Run(async () =>
        {
            await using var connection = new NpgsqlConnection(_connectionString);
            await connection.OpenAsync();
            for (int i = 0; !stop.IsCancellationRequested && i < 20_000; i++)
            {
                // A multi-row transaction, so the connection is sometimes lost inside one.
                await using var command = new NpgsqlCommand($"""
                    BEGIN;
                    INSERT INTO t SELECT 10000 + {i} * 10 + g, g, 'w{i}', NULL, NULL FROM generate_series(0, 9) g;
                    UPDATE t SET k = k + 1 WHERE id BETWEEN 1 AND 20;
                    DELETE FROM t WHERE id = 10000 + {i} * 10 + 3;
                    UPDATE t SET id = id + 1000000 WHERE id = 10000 + {i} * 10 + 4;
                    COMMIT;
                    """, connection);
                await command.ExecuteNonQueryAsync();
                rowChanges += 10 + 20 + 1 + 1;
            }
        });
        // Writes go on until the walsender was killed three times (a quiet machine wrote a fixed 400 transactions
        // between two kills), bounded in time.
        int kills = 0;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!writes.IsCompleted && kills < 3 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(300);
            kills += int.Parse(await ScalarAsync(_connectionString,
                $"SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = '{_names.Slot}' AND active_pid IS NOT NULL"),
                System.Globalization.CultureInfo.InvariantCulture);
        }

        await stop.CancelAsync();
        await writes;
        await DrainAsync(replay);

        Assert.True(kills >= 2, $"the walsender was killed {kills} times");
        Assert.True(replay.Feed.Reconnects >= 2, $"{replay.Feed.Reconnects} reconnects");
        Assert.Equal(0, await DifferenceAsync(_connectionString, "t", "t_osc_new"));
        // Exactly the changes made: none lost, none passed on twice.
        Assert.Equal(rowChanges, replay.Feed.RowsSeen);
    }

    [Fact]
    public async Task The_slot_confirms_only_what_the_applier_committed_in_the_shadow()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        PostgresReplay replay = await StartAsync(gate: gate.Task);
        await ExecuteAsync(_connectionString, "INSERT INTO t VALUES (600, 1, 'x', NULL, NULL)");
        string written = await ScalarAsync(_connectionString, $"SELECT {PostgresReplay.CurrentPositionSql}");

        // The writer is held: the change is received but not in the shadow, so the slot must not confirm it.
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Equal("0", await ScalarAsync(_connectionString, "SELECT count(*) FROM t_osc_new WHERE id = 600"));
        Assert.Equal("True", await ScalarAsync(_connectionString,
            $"SELECT confirmed_flush_lsn < '{written}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{_names.Slot}'"));

        gate.SetResult();
        await DrainAsync(replay);
        string confirmed = "";
        for (int i = 0; i < 50 && confirmed != "True"; i++)
        {
            await Task.Delay(100);
            confirmed = await ScalarAsync(_connectionString,
                $"SELECT confirmed_flush_lsn >= '{written}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{_names.Slot}'");
        }

        Assert.Equal("True", confirmed);
        Assert.True(await ScalarAsync(_connectionString, $"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{_names.Slot}'")
                    is var slot && PostgresLsnPosition.Parse(slot) <= replay.Applier.Applied!, "confirmed beyond what was applied");
    }

    /// <summary>Holds every write until the gate opens: a shadow table that is slow to take the changes.</summary>
    private sealed class GatedWriter(IChangeWriter inner, Task gate) : IChangeWriter
    {
        public async Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken)
        {
            await gate.WaitAsync(cancellationToken);
            await inner.WriteAsync(batch, cancellationToken);
        }
    }

    private async Task<PostgresReplay> StartAsync(bool copy = true, PostgresChangeFeedOptions? feedOptions = null, Task? gate = null)
    {
        await PostgresReplicationSlot.CreateAsync(_connectionString, _names, CancellationToken.None);
        if (copy)
        {
            await ExecuteAsync(_connectionString, "INSERT INTO t_osc_new SELECT * FROM t ON CONFLICT DO NOTHING");
        }
        else
        {
            await ExecuteAsync(_connectionString, "INSERT INTO t_osc_new SELECT * FROM t WHERE id <> 3 ON CONFLICT DO NOTHING");
        }

        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        var types = await PostgresColumnTypes.ReadAsync(connection, new TableName("public", "t"), CancellationToken.None);
        var columns = types.Select(c => new TableColumn(c.Name, false)).ToList();
        var mapping = ColumnMapping.Build(columns, columns, new Dictionary<string, string>());
        var writer = new PostgresChangeWriter(_connectionString, new TableName("public", "t"), new TableName("public", "t_osc_new"), types, ["id"], ["id"], mapping);
        var replay = new PostgresReplay(_connectionString, _names, types.Select(c => c.Name).ToList(), ["id"], gate is null ? writer : new GatedWriter(writer, gate),
            feedOptions: feedOptions);
        _replays.Add(replay);
        return replay;
    }

    private async Task DrainAsync(PostgresReplay replay)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        PostgresLsnPosition target = await PostgresReplay.CurrentPositionAsync(connection, CancellationToken.None);
        await replay.DrainAsync(target, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
    }
}
