using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MySqlConnector;
using Xunit.Abstractions;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.MySql.Apply;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;
using OnlineSchemaChange.MySql.Schema;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>
/// Transactions far larger than the memory the replay may use: their rows stream through the client and the feed's
/// bounded channel as they are decoded, a KILL in the middle of one loses and repeats nothing, and XA transactions,
/// whose rows are logged before they commit, are recognised.
/// </summary>
[Collection("servers")]
public sealed class LargeTransactionTests(ServersFixture servers, ITestOutputHelper output)
{
    private readonly BinlogTestServer fixture = new(servers);

    /// <summary>One DELETE of 200,000 rows of ~700 bytes (about 140 MB of row images, twice that decoded) read by a
    /// deliberately slow consumer: live managed memory stays within a bound a fraction of the transaction's size, and
    /// every row arrives exactly once, before the commit's position.</summary>
    [Fact]
    public async Task Huge_transaction_streams_with_bounded_memory_and_every_row_once()
    {
        const int Rows = 200_000;
        const long Bound = 48L << 20;
        var db = await fixture.NewDatabaseAsync("hugetx");
        await fixture.ExecuteAsync(
            "CREATE TABLE w (id INT PRIMARY KEY, a CHAR(200) NOT NULL, b VARCHAR(600) NOT NULL) CHARACTER SET latin1; " +
            $"INSERT INTO w SELECT seq, LPAD(seq, 200, 'a'), REPEAT(CHAR(65 + seq % 26), 500) FROM seq_1_to_{Rows}", db);
        var start = await fixture.CurrentPositionAsync();
        await fixture.ExecuteAsync("DELETE FROM w", db); // one statement, one transaction
        var end = await fixture.CurrentPositionAsync();

        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start, Tables = new HashSet<string> { db + ".w" } });
        var channel = Channel.CreateBounded<ReplicationMessage>(new BoundedChannelOptions(1_000) { SingleReader = true, SingleWriter = true });
        var feed = new MySqlChangeFeed(client.ReadEventsAsync(cts.Token), db, "w", [0]);
        var commit = new MySqlBinlogPosition(end.File, end.Position);

        long baseline = GC.GetTotalMemory(forceFullCollection: true);
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        Task feeding = feed.RunAsync(channel.Writer, cts.Token);
        var seen = new byte[Rows + 1];
        int rows = 0, rowsAtCommit = -1;
        long peak = 0;
        await foreach (ReplicationMessage message in channel.Reader.ReadAllAsync(cts.Token))
        {
            if (message is PositionMessage p)
            {
                if (p.Position >= commit)
                {
                    rowsAtCommit = rows;
                    break;
                }

                continue;
            }

            var id = (int)((RowChangeMessage)message).Change.Key.Values[0]!;
            seen[id]++;
            rows++;
            if (rows % 1_000 == 0)
            {
                await Task.Delay(1, cts.Token); // slower than the stream: the channel stays full, the client waits
            }

            if (rows % 20_000 == 0)
            {
                peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: true) - baseline);
            }
        }

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        await cts.CancelAsync();
        await feeding.ContinueWith(_ => { }, TaskScheduler.Default);

        output.WriteLine($"{Rows} rows in one DELETE: {allocated >> 20} MB allocated while streaming, live managed memory grew at most {peak >> 20} MB");
        Assert.Equal(Rows, rowsAtCommit);
        Assert.Equal(Rows, seen.Count(n => n == 1));
        Assert.Equal(0, seen.Count(n => n > 1));
        Assert.Equal(0, client.Reconnects);
        // The decoded transaction is many times the bound, so holding it (or much of it) would break the bound.
        Assert.True(allocated > 4 * Bound, $"only {allocated >> 20} MB allocated: the transaction is too small to tell");
        Assert.True(peak < Bound, $"live managed memory grew {peak >> 20} MB while streaming a transaction of {allocated >> 20} MB decoded");
    }

    /// <summary>The dump connection is KILLed twice inside one transaction of ~45,000 row changes (updates, deletes,
    /// inserts, and second updates of rows it already changed) while the applier writes them to a shadow table. The
    /// client resumes at the last commit and drops what it had handed out: each change arrives once and the shadow
    /// ends equal to the table.</summary>
    [Fact]
    public async Task Kill_inside_a_transaction_repeats_and_loses_nothing_and_the_shadow_converges()
    {
        string connectionString = await servers.NewMySqlDatabaseAsync("killtx");
        string db = new MySqlConnectionStringBuilder(connectionString).Database;
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(600) NOT NULL);
            INSERT INTO t SELECT seq, seq, REPEAT('s', 500) FROM seq_1_to_30000;
            CREATE TABLE t_osc_new LIKE t;
            INSERT INTO t_osc_new SELECT * FROM t;
            """);
        var start = await fixture.CurrentPositionAsync();
        long changes = 0;
        await using (var connection = new MySqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            foreach (var sql in new[]
            {
                "UPDATE t SET v = v + 1, s = REPEAT('u', 500)",
                "DELETE FROM t WHERE id % 7 = 0",
                "INSERT INTO t SELECT seq, seq, 'new' FROM seq_30001_to_35000",
                "UPDATE t SET v = v * 2 WHERE id % 3 = 0",
            })
            {
                await using var command = new MySqlCommand(sql, connection, transaction);
                changes += await command.ExecuteNonQueryAsync();
            }

            await transaction.CommitAsync();
        }

        var end = await fixture.CurrentPositionAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync())
        {
            Start = start,
            Tables = new HashSet<string> { db + ".t" },
            ServerId = 4343,
            ReconnectBaseDelay = TimeSpan.FromMilliseconds(50),
        });
        var columns = new[] { "id", "v", "s" }.Select(n => new TableColumn(n, false)).ToList();
        var applier = new ChangeApplier(
            new MySqlChangeWriter(connectionString, new TableName(db, "t_osc_new"), new MySqlKeyPredicate(["id"]), ColumnMapping.Build(columns, columns, new Dictionary<string, string>())),
            new ApplierOptions(), TimeProvider.System);
        var channel = Channel.CreateBounded<ReplicationMessage>(new BoundedChannelOptions(2_000) { SingleReader = true, SingleWriter = true });
        var feed = new MySqlChangeFeed(KillingAt(client.ReadEventsAsync(cts.Token), db, [changes / 4, changes / 2], cts.Token), db, "t", [0]);
        Task feeding = feed.RunAsync(channel.Writer, cts.Token);
        Task applying = applier.RunAsync(channel.Reader, cts.Token);
        Task caughtUp = applier.WaitForAsync(new MySqlBinlogPosition(end.File, end.Position), cts.Token);
        await Task.WhenAny(caughtUp, feeding, applying);
        await caughtUp;

        output.WriteLine($"{changes} changes in one transaction, {client.Reconnects} reconnects, {client.MidTransactionResumes} inside the transaction");
        Assert.True(client.MidTransactionResumes >= 2, $"expected resumes inside the transaction, saw {client.MidTransactionResumes} (reconnects {client.Reconnects})");
        Assert.Equal(changes, feed.RowsSeen);
        Assert.Equal(changes, applier.ChangesReceived);
        const string checksum = "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('|', id, v, s))), 0)) FROM ";
        Assert.Equal(await ScalarAsync(connectionString, checksum + "t"), await ScalarAsync(connectionString, checksum + "t_osc_new"));
        await cts.CancelAsync();
        await Task.WhenAll(feeding, applying).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    /// <summary>Passes events on, and KILLs the dump connection once as many rows of the database as each threshold
    /// have been passed on.</summary>
    private async IAsyncEnumerable<BinlogEvent> KillingAt(IAsyncEnumerable<BinlogEvent> events, string database, long[] thresholds, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long rows = 0;
        var next = 0;
        await foreach (var e in events.WithCancellation(cancellationToken))
        {
            yield return e;
            if (e is RowsEvent r && r.Table.Database == database)
            {
                rows += r.Rows.Length;
                if (next < thresholds.Length && rows >= thresholds[next])
                {
                    next++;
                    await KillDumpConnectionsAsync();
                }
            }
        }
    }

    /// <summary>MariaDB logs a two-phase XA transaction at XA PREPARE and its XA COMMIT as a later group: the client
    /// decodes both, its resume point moves past them, and the feed refuses to replay rows that were only prepared.
    /// An XA committed in one phase is an ordinary transaction.</summary>
    [Fact]
    public async Task Xa_prepare_is_decoded_and_the_feed_refuses_prepared_rows_of_its_table()
    {
        var db = await fixture.NewDatabaseAsync("xa");
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY); CREATE TABLE other (id INT PRIMARY KEY)", db);
        var start = await fixture.CurrentPositionAsync();
        await fixture.ExecuteAsync(
            "XA START 'one'; INSERT INTO t VALUES (1); XA END 'one'; XA COMMIT 'one' ONE PHASE; " +
            "XA START 'two'; INSERT INTO other VALUES (2); XA END 'two'; XA PREPARE 'two'; XA COMMIT 'two'; " +
            "XA START 'three'; INSERT INTO t VALUES (3); XA END 'three'; XA PREPARE 'three'; XA ROLLBACK 'three'", db);
        var end = await fixture.CurrentPositionAsync();

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var seen = new List<string>();
        await using (var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start, Tables = new HashSet<string> { db + ".*" } }))
        {
            await foreach (var e in client.ReadEventsAsync(cts.Token))
            {
                switch (e)
                {
                    case RowsEvent r:
                        seen.Add($"{r.Table.Table} {r.Rows[0].After![0]}");
                        break;
                    case XaPrepareEvent p:
                        seen.Add(p.OnePhase ? "one phase" : "prepared");
                        break;
                    case QueryEvent { IsXaCompletion: true } q:
                        seen.Add(q.Sql.Split(' ')[1].ToLowerInvariant());
                        break;
                    case XidEvent:
                        seen.Add("xid");
                        break;
                }

                if (client.LastCommitted is { } at && at.File == end.File && at.Position >= end.Position)
                {
                    break;
                }
            }
        }

        Assert.Equal(["t 1", "xid", "other 2", "prepared", "commit", "t 3", "prepared", "rollback"], seen);

        await using var again = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start, Tables = new HashSet<string> { db + ".t" } });
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        var error = await Assert.ThrowsAsync<OscException>(() => new MySqlChangeFeed(again.ReadEventsAsync(cts.Token), db, "t", [0]).RunAsync(channel.Writer, cts.Token));
        Assert.Contains("XA", error.Message, StringComparison.Ordinal);
    }

    private async Task KillDumpConnectionsAsync()
    {
        await using var connection = await fixture.OpenAsync();
        var ids = new List<long>();
        await using (var list = new MySqlCommand("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                ids.Add(Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        Assert.NotEmpty(ids);
        foreach (var id in ids)
        {
            await using var kill = new MySqlCommand($"KILL CONNECTION {id}", connection);
            await kill.ExecuteNonQueryAsync();
        }
    }
}
