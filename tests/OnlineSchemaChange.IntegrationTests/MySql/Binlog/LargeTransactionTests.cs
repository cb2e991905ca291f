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
            INSERT INTO t SELECT seq, seq, REPEAT('s', 500) FROM seq_1_to_100000;
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
                "INSERT INTO t SELECT seq, seq, 'new' FROM seq_100001_to_105000",
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
        await using var writer = new MySqlChangeWriter(connectionString, new TableName(db, "t_osc_new"), new MySqlKeyPredicate(["id"]),
            ColumnMapping.Build(columns, columns, new Dictionary<string, string>()));
        var applier = new ChangeApplier(writer, new ApplierOptions(), TimeProvider.System);
        var channel = Channel.CreateBounded<ReplicationMessage>(new BoundedChannelOptions(2_000) { SingleReader = true, SingleWriter = true });
        // Some 80 MB of binlog, far more than the socket buffers hold: when a kill comes, most of the transaction is
        // still at the server. Each kill waits for the client to have noticed the one before (it drains what was
        // already received first), or it would find no dump connection of the client's to end.
        var feed = new MySqlChangeFeed(KillingAt(client.ReadEventsAsync(cts.Token), db, [changes / 8, changes / 3], () => client.Reconnects, cts.Token), db, "t", [0]);
        Task feeding = feed.RunAsync(channel.Writer, cts.Token);
        Task applying = applier.RunAsync(channel.Reader, cts.Token);
        try
        {
            Task caughtUp = applier.WaitForAsync(new MySqlBinlogPosition(end.File, end.Position), cts.Token);
            await Task.WhenAny(caughtUp, feeding, applying);
            await caughtUp;

            output.WriteLine($"{changes} changes in one transaction, {client.Reconnects} reconnects, {client.MidTransactionResumes} inside the transaction");
            Assert.True(client.MidTransactionResumes >= 2, $"expected resumes inside the transaction, saw {client.MidTransactionResumes} (reconnects {client.Reconnects})");
            Assert.Equal(changes, feed.RowsSeen);
            Assert.Equal(changes, applier.ChangesReceived);
            const string checksum = "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('|', id, v, s))), 0)) FROM ";
            Assert.Equal(await ScalarAsync(connectionString, checksum + "t"), await ScalarAsync(connectionString, checksum + "t_osc_new"));
        }
        finally
        {
            // Pass or fail, the stream ends here: a binlog reader left connected would disturb later tests that count them.
            await cts.CancelAsync();
            await Task.WhenAll(feeding, applying).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>Passes events on, and KILLs the dump connection once as many rows of the database as each threshold
    /// have been passed on.</summary>
    private async IAsyncEnumerable<BinlogEvent> KillingAt(IAsyncEnumerable<BinlogEvent> events, string database, long[] thresholds, Func<long> reconnects,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long rows = 0;
        var next = 0;
        await foreach (var e in events.WithCancellation(cancellationToken))
        {
            yield return e;
            if (e is RowsEvent r && r.Table.Database == database)
            {
                rows += r.Rows.Length;
                if (next < thresholds.Length && rows >= thresholds[next] && reconnects() >= next)
                {
                    next++;
                    await KillDumpConnectionsAsync();
                }
            }
        }
    }

    /// <summary>MariaDB logs a two-phase XA transaction at XA PREPARE and its XA COMMIT as a later group: the client
    /// decodes both with the XID, its resume point moves past them, and the feed passes on a prepared transaction's
    /// rows at its XA COMMIT only, never those of one rolled back. An XA committed in one phase is an ordinary
    /// transaction.</summary>
    [Fact]
    public async Task Xa_prepare_is_decoded_with_its_xid_and_the_feed_passes_on_committed_rows_only()
    {
        var db = await fixture.NewDatabaseAsync("xa");
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY); CREATE TABLE other (id INT PRIMARY KEY)", db);
        var start = await fixture.CurrentPositionAsync();
        await fixture.ExecuteAsync(
            "XA START 'one'; INSERT INTO t VALUES (1); XA END 'one'; XA COMMIT 'one' ONE PHASE; " +
            "XA START 'two'; INSERT INTO other VALUES (2); XA END 'two'; XA PREPARE 'two'; XA COMMIT 'two'; " +
            "XA START 'three'; INSERT INTO t VALUES (3); XA END 'three'; XA PREPARE 'three'; XA ROLLBACK 'three'; " +
            "XA START 'four','b',7; INSERT INTO t VALUES (4); XA END 'four','b',7; XA PREPARE 'four','b',7; XA COMMIT 'four','b',7", db);
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
                        seen.Add(p.OnePhase ? "one phase" : $"prepared {p.Xid}");
                        break;
                    case QueryEvent { XaCompletion: { } c }:
                        seen.Add($"{(c.Commit ? "commit" : "rollback")} {c.Xid}");
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

        Assert.Equal(
        [
            "t 1", "xid",
            "other 2", "prepared X'74776F',X'',1", "commit X'74776F',X'',1",
            "t 3", "prepared X'7468726565',X'',1", "rollback X'7468726565',X'',1",
            "t 4", "prepared X'666F7572',X'62',7", "commit X'666F7572',X'62',7",
        ], seen);

        await using var again = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start, Tables = new HashSet<string> { db + ".t" } });
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        var feed = new MySqlChangeFeed(again.ReadEventsAsync(cts.Token), db, "t", [0]);
        Task feeding = feed.RunAsync(channel.Writer, cts.Token);
        var passed = new List<string>();
        await foreach (ReplicationMessage m in channel.Reader.ReadAllAsync(cts.Token))
        {
            if (m is RowChangeMessage r)
            {
                passed.Add($"row {r.Change.Key.Values[0]}");
            }
            else if (m is PositionMessage { Position: MySqlBinlogPosition p })
            {
                if (p.ResumePoint != p)
                {
                    passed.Add("held");
                }

                if (p >= new MySqlBinlogPosition(end.File, end.Position))
                {
                    break;
                }
            }
        }

        // Rows 3 and 4 are held from their XA PREPARE (the position sent there resumes before it); row 3 is dropped at
        // its rollback, row 4 passed on at its commit.
        Assert.Equal(["row 1", "held", "held", "row 4"], passed);
        await cts.CancelAsync();
        await feeding.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    /// <summary>A prepared XA transaction's rows are held when the dump connection is KILLed; the client resumes after
    /// the XA PREPARE, the held rows survive in memory, and another connection's XA COMMIT delivers them exactly once:
    /// the shadow ends equal to the table. While they are held, the resume point of every applied position stays at
    /// the transaction's start.</summary>
    [Fact]
    public async Task Kill_while_xa_rows_are_held_loses_and_repeats_nothing_and_the_resume_point_stays_before_the_prepare()
    {
        // Unpooled: a pooled connection would outlive the preparing session's close and carry its XA state on.
        string connectionString = new MySqlConnectionStringBuilder(await servers.NewMySqlDatabaseAsync("killxa")) { Pooling = false }.ConnectionString;
        string db = new MySqlConnectionStringBuilder(connectionString).Database;
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL);
            INSERT INTO t SELECT seq, seq FROM seq_1_to_5000;
            CREATE TABLE t_osc_new LIKE t;
            INSERT INTO t_osc_new SELECT * FROM t;
            """);
        var start = await fixture.CurrentPositionAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync())
        {
            Start = start,
            Tables = new HashSet<string> { db + ".t" },
            ServerId = 4344,
            ReconnectBaseDelay = TimeSpan.FromMilliseconds(50),
        });
        var columns = new[] { "id", "v" }.Select(n => new TableColumn(n, false)).ToList();
        await using var writer = new MySqlChangeWriter(connectionString, new TableName(db, "t_osc_new"), new MySqlKeyPredicate(["id"]),
            ColumnMapping.Build(columns, columns, new Dictionary<string, string>()));
        var applier = new ChangeApplier(writer, new ApplierOptions(), TimeProvider.System);
        var channel = Channel.CreateBounded<ReplicationMessage>(new BoundedChannelOptions(2_000) { SingleReader = true, SingleWriter = true });
        await using var serverXa = new ServerPreparedXa(connectionString);
        var feed = new MySqlChangeFeed(client.ReadEventsAsync(cts.Token), db, "t", [0], new PreparedXaTransactions(waitUntilCommitted: serverXa.WaitUntilCommittedAsync));
        Task feeding = feed.RunAsync(channel.Writer, cts.Token);
        Task applying = applier.RunAsync(channel.Reader, cts.Token);

        var beforeXa = await fixture.CurrentPositionAsync();
        long xaChanges = 0;
        await using (var preparer = new MySqlConnection(connectionString))
        {
            await preparer.OpenAsync();
            foreach (var sql in new[] { "XA START 'held'", "UPDATE t SET v = -v WHERE id <= 1000", "DELETE FROM t WHERE id BETWEEN 4001 AND 4500", "INSERT INTO t SELECT seq, seq FROM seq_6001_to_6500", "XA END 'held'", "XA PREPARE 'held'" })
            {
                await using var command = new MySqlCommand(sql, preparer);
                xaChanges += Math.Max(0, await command.ExecuteNonQueryAsync());
            }
        }

        var afterPrepare = await fixture.CurrentPositionAsync();
        try
        {
            // Ordinary transactions go on around the held one; the dump connection is killed while it is held.
            await ExecuteAsync(connectionString, "UPDATE t SET v = v + 1 WHERE id BETWEEN 2001 AND 2100");
            await applier.WaitForAsync(new MySqlBinlogPosition(afterPrepare.File, afterPrepare.Position), cts.Token);
            Assert.Equal(xaChanges, feed.PreparedXa.HeldRows);
            var resume = (MySqlBinlogPosition)applier.Applied!.ResumePoint;
            output.WriteLine($"XA from {beforeXa.File}:{beforeXa.Position} to {afterPrepare.File}:{afterPrepare.Position}; applied {applier.Applied}, resume point {resume}");
            Assert.True(resume >= new MySqlBinlogPosition(beforeXa.File, beforeXa.Position) && resume < new MySqlBinlogPosition(afterPrepare.File, afterPrepare.Position),
                $"the resume point {resume} must be the XA transaction's start, between {beforeXa.File}:{beforeXa.Position} and {afterPrepare.File}:{afterPrepare.Position}");

            await KillDumpConnectionsAsync();
            await ExecuteAsync(connectionString, "UPDATE t SET v = v + 1 WHERE id BETWEEN 2101 AND 2200");
            // The preparing connection is gone, so another one commits it (once the server has noticed the close).
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await ExecuteAsync(connectionString, "XA COMMIT 'held'");
                    break;
                }
                catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.XAERNotA && attempt < 100)
                {
                    await Task.Delay(50);
                }
            }
        }
        catch
        {
            await ExecuteAsync(connectionString, "XA ROLLBACK 'held'");
            throw;
        }

        var end = await fixture.CurrentPositionAsync();
        await applier.WaitForAsync(new MySqlBinlogPosition(end.File, end.Position), cts.Token);

        Assert.True(client.Reconnects >= 1, "the dump connection was killed");
        Assert.Equal(xaChanges + 200, applier.ChangesReceived);
        Assert.Equal(0, feed.PreparedXa.HeldRows);
        Assert.Equal(applier.Applied, applier.Applied!.ResumePoint);
        const string checksum = "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('|', id, v))), 0)) FROM ";
        Assert.Equal(await ScalarAsync(connectionString, checksum + "t"), await ScalarAsync(connectionString, checksum + "t_osc_new"));
        Assert.Equal("-1000", await ScalarAsync(connectionString, "SELECT v FROM t_osc_new WHERE id = 1000"));
        await cts.CancelAsync();
        await Task.WhenAll(feeding, applying).ContinueWith(_ => { }, TaskScheduler.Default);
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
