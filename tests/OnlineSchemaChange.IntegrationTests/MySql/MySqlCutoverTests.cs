using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using MySqlConnector;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.MySql.Apply;
using OnlineSchemaChange.MySql.Copy;
using OnlineSchemaChange.MySql.Cutover;
using OnlineSchemaChange.MySql.Protocol;
using OnlineSchemaChange.MySql.Replication;
using OnlineSchemaChange.MySql.Schema;
using Xunit.Abstractions;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>The atomic swap on a real MariaDB, with writes running through it.</summary>
[Collection("servers")]
public sealed class MySqlCutoverTests(ServersFixture servers, ITestOutputHelper output)
{
    [Fact]
    public async Task Swaps_atomically_under_writes_and_keeps_every_acknowledged_write()
    {
        await using var migration = await Migration.StartAsync(servers);
        using var loadStop = new CancellationTokenSource();
        Task<Load> load = Load.RunAsync(migration.ConnectionString, loadStop.Token);
        await Task.Delay(500);
        await migration.CopyAsync();

        CutoverResult result = await new MySqlCutover(migration.ConnectionString, migration.Original, migration.Names,
            migration.Applier.WaitForAsync, new CutoverOptions()).RunAsync(CancellationToken.None);
        await Task.Delay(500);
        await loadStop.CancelAsync();
        Load done = await load;

        output.WriteLine($"writes blocked {result.WritesBlocked.TotalMilliseconds:0} ms, attempts {result.Attempts}, " +
                         $"load: {done.Inserted.Count} inserts, {done.Increments.Count} increments, slowest write {done.Slowest.TotalMilliseconds:0} ms");
        Assert.Equal("bigint(20)", await migration.ScalarAsync("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal("int(11)", await migration.ScalarAsync("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_osc_old' AND COLUMN_NAME = 'k'"));
        Assert.Equal("0", await migration.ScalarAsync("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_osc_new'"));
        Assert.True(done.Inserted.Count > 20, "the load must run through the cut-over");
        Assert.Equal((2000 + done.Inserted.Count).ToString(System.Globalization.CultureInfo.InvariantCulture), await migration.ScalarAsync("SELECT COUNT(*) FROM t"));
        Assert.Equal(done.Inserted.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
            await migration.ScalarAsync($"SELECT COUNT(*) FROM t WHERE id IN ({string.Join(",", done.Inserted)})"));
        foreach (var (id, increments) in done.Increments.GroupBy(i => i).Select(g => (g.Key, g.Count())))
        {
            Assert.Equal((id % 97 + increments).ToString(System.Globalization.CultureInfo.InvariantCulture), await migration.ScalarAsync($"SELECT k FROM t WHERE id = {id}"));
        }

        Assert.True(result.WritesBlocked < TimeSpan.FromSeconds(2), $"writes were blocked {result.WritesBlocked}");
    }

    [Fact]
    public async Task A_long_transaction_on_the_table_makes_every_attempt_give_up_at_the_lock_timeout_and_leaves_the_original()
    {
        await using var migration = await Migration.StartAsync(servers);
        await migration.CopyAsync();
        await using var holder = new MySqlConnection(migration.ConnectionString);
        await holder.OpenAsync();
        await using var longTransaction = await holder.BeginTransactionAsync();
        await using (var read = new MySqlCommand("SELECT COUNT(*) FROM t", holder, longTransaction))
        {
            await read.ExecuteScalarAsync();
        }

        using var loadStop = new CancellationTokenSource();
        Task<Load> load = Load.RunAsync(migration.ConnectionString, loadStop.Token);
        var cutover = new MySqlCutover(migration.ConnectionString, migration.Original, migration.Names, migration.Applier.WaitForAsync,
            new CutoverOptions { LockTimeout = TimeSpan.FromSeconds(1), Attempts = 2 });

        var error = await Assert.ThrowsAsync<OscException>(() => cutover.RunAsync(CancellationToken.None));
        await loadStop.CancelAsync();
        Load done = await load;

        output.WriteLine($"{error.Message}; slowest write {done.Slowest.TotalMilliseconds:0} ms");
        Assert.Contains("did not succeed in 2 attempts", error.Message, StringComparison.Ordinal);
        Assert.True(done.Slowest < TimeSpan.FromSeconds(2.5), $"a write waited {done.Slowest}");
        Assert.Equal("int(11)", await migration.ScalarAsync("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal("0", await migration.ScalarAsync("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_osc_old'"));
        Assert.Equal("1", await migration.ScalarAsync("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_osc_new'"));
        await longTransaction.RollbackAsync();
    }

    [Fact]
    public async Task A_replay_that_cannot_catch_up_fails_the_attempt_before_the_lock_so_the_application_never_waits_for_it()
    {
        await using var migration = await Migration.StartAsync(servers);
        await migration.CopyAsync();
        using var loadStop = new CancellationTokenSource();
        Task<Load> load = Load.RunAsync(migration.ConnectionString, loadStop.Token);
        // The replay is held up for the first 5 s (longer than the 2 s the catch-up may take): as a replay far behind.
        var heldUntil = DateTime.UtcNow.AddSeconds(5);
        int drains = 0;
        async Task DrainAsync(ReplicationPosition position, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref drains);
            TimeSpan left = heldUntil - DateTime.UtcNow;
            if (left > TimeSpan.Zero)
            {
                await Task.Delay(left, cancellationToken);
            }

            await migration.Applier.WaitForAsync(position, cancellationToken);
        }

        var cutover = new MySqlCutover(migration.ConnectionString, migration.Original, migration.Names, DrainAsync,
            new CutoverOptions { LockTimeout = TimeSpan.FromSeconds(1), DrainTimeout = TimeSpan.FromSeconds(2), Attempts = 10 });

        CutoverResult result = await cutover.RunAsync(CancellationToken.None);
        await Task.Delay(300);
        await loadStop.CancelAsync();
        Load done = await load;

        output.WriteLine($"{result.Attempts} attempts, {drains} drains, writes held {result.WritesBlocked.TotalMilliseconds:0} ms, slowest write {done.Slowest.TotalMilliseconds:0} ms");
        Assert.True(result.Attempts >= 2, $"{result.Attempts} attempts: the first must give up while the replay was held up");
        // Neither the held-up attempts nor the swap held the application for the backlog (an attempt that locked
        // first would have held it for the 2 s drain timeout).
        Assert.True(done.Slowest < TimeSpan.FromSeconds(1.2), $"a write waited {done.Slowest}");
        Assert.Equal("bigint(20)", await migration.ScalarAsync("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
    }

    /// <summary>A table mid-migration: shadow created, binlog replay running, ready to copy.</summary>
    private sealed class Migration : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new(TimeSpan.FromMinutes(3));
        private Task _feeding = Task.CompletedTask;
        private Task _applying = Task.CompletedTask;
        private BinlogClient? _client;
        private MySqlChangeWriter? _writer;

        public string ConnectionString { get; private init; } = "";

        public TableName Original { get; private init; } = new(null, "t");

        public ShadowNames Names { get; } = new("t", 64);

        public ChangeApplier Applier { get; private set; } = null!;

        private ColumnMapping Mapping { get; init; } = null!;

        public static async Task<Migration> StartAsync(ServersFixture servers)
        {
            string connectionString = await servers.NewMySqlDatabaseAsync("cutover");
            var builder = new MySqlConnectionStringBuilder(connectionString);
            var columns = new[] { "id", "k", "c" }.Select(n => new TableColumn(n, false)).ToList();
            var migration = new Migration
            {
                ConnectionString = connectionString,
                Original = new TableName(builder.Database, "t"),
                Mapping = ColumnMapping.Build(columns, columns, new Dictionary<string, string>()),
            };
            await migration.ExecuteAsync("""
                CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40));
                INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_2000;
                CREATE TABLE t_osc_new LIKE t;
                ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL;
                """);
            BinlogStart.FilePosition start = await CurrentPositionAsync(connectionString);
            migration._client = new BinlogClient(new BinlogClientOptions(new MySqlEndpoint(builder.Server, (int)builder.Port, builder.UserID, builder.Password))
            {
                Start = start,
                Tables = new HashSet<string> { $"{builder.Database}.t" },
            });
            var channel = Channel.CreateBounded<ReplicationMessage>(10_000);
            migration._writer = new MySqlChangeWriter(connectionString, migration.Original with { Name = migration.Names.Shadow },
                new MySqlKeyPredicate(["id"]), migration.Mapping);
            migration.Applier = new ChangeApplier(migration._writer, new ApplierOptions(), TimeProvider.System);
            migration._feeding = new MySqlChangeFeed(migration._client.ReadEventsAsync(migration._stop.Token), builder.Database, "t", [0])
                .RunAsync(channel.Writer, migration._stop.Token);
            migration._applying = migration.Applier.RunAsync(channel.Reader, migration._stop.Token);
            return migration;
        }

        public Task CopyAsync() => new KeysetCopier(
            new MySqlCopySource(ConnectionString, Original, Original with { Name = Names.Shadow }, new MySqlKeyPredicate(["id"]), Mapping),
            new ChunkSizer(TimeSpan.FromMilliseconds(50), initialRows: 500), null, workers: 2).RunAsync(null, _stop.Token);

        public async Task ExecuteAsync(string sql)
        {
            await using var connection = new MySqlConnection(ConnectionString);
            await connection.OpenAsync();
            await using var command = new MySqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }

        public async Task<string?> ScalarAsync(string sql)
        {
            await using var connection = new MySqlConnection(ConnectionString);
            await connection.OpenAsync();
            await using var command = new MySqlCommand(sql, connection);
            object? value = await command.ExecuteScalarAsync();
            return value is null or DBNull ? null : Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture);
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_feeding, _applying).ContinueWith(_ => { }, TaskScheduler.Default);
            if (_client is not null)
            {
                await _client.DisposeAsync();
            }

            if (_writer is not null)
            {
                await _writer.DisposeAsync();
            }

            _stop.Dispose();
        }

        private static async Task<BinlogStart.FilePosition> CurrentPositionAsync(string connectionString)
        {
            await using var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new MySqlCommand("SHOW MASTER STATUS", connection);
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            return new BinlogStart.FilePosition(reader.GetString(0), Convert.ToUInt32(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>An application writing through the cut-over: records each acknowledged write and the slowest one.</summary>
    private sealed record Load(ConcurrentBag<long> Inserted, ConcurrentBag<int> Increments, TimeSpan Slowest)
    {
        public static async Task<Load> RunAsync(string connectionString, CancellationToken cancellationToken)
        {
            var inserted = new ConcurrentBag<long>();
            var increments = new ConcurrentBag<int>();
            var random = new Random(3);
            TimeSpan slowest = TimeSpan.Zero;
            await using var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync(CancellationToken.None);
            while (!cancellationToken.IsCancellationRequested)
            {
                var clock = Stopwatch.StartNew();
                if (random.Next(2) == 0)
                {
                    await using var insert = new MySqlCommand("INSERT INTO t (k, c) VALUES (0, 'load')", connection);
                    await insert.ExecuteNonQueryAsync(CancellationToken.None);
                    inserted.Add(insert.LastInsertedId);
                }
                else
                {
                    int id = random.Next(1, 2001);
                    await using var update = new MySqlCommand($"UPDATE t SET k = k + 1 WHERE id = {id}", connection);
                    await update.ExecuteNonQueryAsync(CancellationToken.None);
                    increments.Add(id);
                }

                slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
                await Task.Delay(2, CancellationToken.None);
            }

            return new Load(inserted, increments, slowest);
        }
    }
}
