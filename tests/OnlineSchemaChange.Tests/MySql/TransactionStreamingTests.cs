using System.Threading.Channels;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.Tests.MySql;

/// <summary>Transaction boundaries, the client's exactly-once delivery across reconnects, and the change feed's
/// positions, on event sequences shaped as MySQL 8 and MariaDB 10.11 log them (GTID, BEGIN or not, XA).</summary>
public sealed class TransactionStreamingTests
{
    private const string File = "binlog.000003";
    private static readonly TableMapEvent Map = new(Header(BinlogEventType.TableMap, 0), 7, "shop", "items", [ColumnType.Long, ColumnType.Long], [], []);

    private static BinlogEventHeader Header(BinlogEventType type, uint next, ushort flags = 0) => new(1_700_000_000, type, 1, 30, next, flags);

    private static T At<T>(T e, string file = File) where T : BinlogEvent
    {
        e.Coordinates = new BinlogCoordinates(file, e.Header.NextPosition, null);
        return e;
    }

    private static MariaDbGtidEvent MariaGtid(uint next, bool standalone = false, bool preparedXa = false) =>
        At(new MariaDbGtidEvent(Header(BinlogEventType.MariaDbGtid, next), 1, 0, (byte)((standalone ? 1 : 0) | (preparedXa ? 0x40 : 0))));
    private static MySqlGtidEvent MySqlGtid(uint next) => At(new MySqlGtidEvent(Header(BinlogEventType.Gtid, next), Guid.Empty, 1, false));
    private static QueryEvent Query(uint next, string sql) => At(new QueryEvent(Header(BinlogEventType.Query, next), 1, 0, "shop", sql));
    private static TableMapEvent TableMap(uint next) => At(Map with { Header = Header(BinlogEventType.TableMap, next) });
    private static XidEvent Xid(uint next) => At(new XidEvent(Header(BinlogEventType.Xid, next), 9));
    private static XaPrepareEvent XaPrepare(uint next, bool onePhase, string gtrid = "a") =>
        At(new XaPrepareEvent(Header(BinlogEventType.XaPrepare, next), onePhase, XaId.FromBytes(1, System.Text.Encoding.ASCII.GetBytes(gtrid), [])));

    private static string Hex(string gtrid) => Convert.ToHexString(System.Text.Encoding.ASCII.GetBytes(gtrid));

    /// <summary>A prepared XA transaction's group as MariaDB 10.11 logs it: a GTID flagged as prepared XA, rows, XA END, XA_PREPARE_LOG.</summary>
    private static BinlogEvent[] PreparedGroup(uint at, string gtrid, params int[] ids) =>
        [MariaGtid(at, preparedXa: true), TableMap(at + 10), Rows(at + 20, ids), Query(at + 30, $"XA END X'{Hex(gtrid)}',X'',1"), XaPrepare(at + 40, onePhase: false, gtrid)];

    /// <summary>XA COMMIT / XA ROLLBACK as MariaDB logs them: a standalone GTID and the statement with the XID in hex.</summary>
    private static BinlogEvent[] Completion(uint at, string verb, string gtrid) => [MariaGtid(at, standalone: true), Query(at + 10, $"XA {verb} X'{Hex(gtrid)}',X'',1")];

    private static BinlogEvent[] Committed(uint at, params int[] ids) => [MariaGtid(at), TableMap(at + 10), Rows(at + 20, ids), Xid(at + 30)];

    /// <summary>What the feed sends for <paramref name="events"/>: "row 5", or "at FILE:POS" with "resume POS" when the
    /// resume point is earlier.</summary>
    private static async Task<List<string>> FeedAsync(BinlogEvent[] events, PreparedXaTransactions? xa = null)
    {
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        await new MySqlChangeFeed(events.ToAsyncEnumerable(), "shop", "items", [0], xa).RunAsync(channel.Writer, CancellationToken.None);
        List<string> seen = [];
        await foreach (ReplicationMessage m in channel.Reader.ReadAllAsync())
        {
            seen.Add(m switch
            {
                RowChangeMessage r => "row " + r.Change.Key.Values[0],
                PositionMessage { Position: MySqlBinlogPosition p } when p.ResumePoint != p => $"at {p.Position} resume {((MySqlBinlogPosition)p.ResumePoint).Position}",
                PositionMessage { Position: MySqlBinlogPosition p } => $"at {p.Position}",
                _ => "?",
            });
        }

        return seen;
    }

    private static RowsEvent Rows(uint next, params int[] ids) =>
        At(new RowsEvent(Header(BinlogEventType.WriteRowsV1, next), RowsEventKind.Insert, Map, null, [.. ids.Select(id => new OnlineSchemaChange.MySql.Binlog.RowChange(null, [id, id * 10]))]));

    private static RotateEvent FakeRotate(string file, ulong position) => At(new RotateEvent(Header(BinlogEventType.Rotate, 0, flags: 0x20), position, file), file);

    private static FormatDescriptionEvent Format(uint next) => At(new FormatDescriptionEvent(Header(BinlogEventType.FormatDescription, next), 4, "10.11", 19, [], ChecksumAlgorithm.Crc32));

    [Fact]
    public void Mysql_transaction_is_inside_until_its_xid_and_a_ddl_is_a_statement()
    {
        var boundaries = new TransactionBoundaries();
        TransactionStep[] steps = [.. new BinlogEvent[] { MySqlGtid(100), Query(150, "BEGIN"), TableMap(200), Rows(300, 1), Xid(330) }.Select(boundaries.Observe)];
        Assert.Equal([TransactionStep.Inside, TransactionStep.Inside, TransactionStep.Inside, TransactionStep.Inside, TransactionStep.Commit], steps);
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(MySqlGtid(400)));
        Assert.Equal(TransactionStep.Statement, boundaries.Observe(Query(500, "ALTER TABLE items ADD COLUMN c INT")));
        Assert.False(boundaries.InGroup);
    }

    [Fact]
    public void Mariadb_transaction_without_begin_keeps_savepoints_inside()
    {
        var boundaries = new TransactionBoundaries();
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(MariaGtid(100)));
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(Query(150, "SAVEPOINT `a`")));
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(Rows(300, 1)));
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(Query(350, "ROLLBACK TO `a`")));
        Assert.Equal(TransactionStep.Commit, boundaries.Observe(Xid(400)));
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(MariaGtid(450, standalone: true)));
        Assert.Equal(TransactionStep.Statement, boundaries.Observe(Query(500, "CREATE TABLE x (id INT)")));
    }

    [Fact]
    public void Two_phase_xa_ends_prepared_and_its_commit_is_a_group_of_its_own()
    {
        // MySQL: GTID, then an XA START statement.
        var boundaries = new TransactionBoundaries();
        boundaries.Observe(MySqlGtid(100));
        Assert.False(boundaries.InXa);
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(Query(150, "XA START X'61',X'',1")));
        Assert.True(boundaries.InXa);
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(Rows(300, 1)));
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(Query(380, "XA END X'61',X'',1")));
        Assert.Equal(TransactionStep.Prepared, boundaries.Observe(XaPrepare(420, onePhase: false)));
        boundaries.Observe(MariaGtid(460));
        Assert.Equal(TransactionStep.Commit, boundaries.Observe(Query(540, "XA COMMIT X'61',X'',1")));
        boundaries.Observe(MySqlGtid(600));
        boundaries.Observe(Query(650, "XA START X'62',X'',1"));
        Assert.Equal(TransactionStep.Commit, boundaries.Observe(XaPrepare(700, onePhase: true)));

        // MariaDB: no XA START statement; the GTID says the group is a prepared XA transaction's.
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(MariaGtid(800, preparedXa: true)));
        Assert.True(boundaries.InXa);
        boundaries.Observe(Rows(900, 2));
        Assert.Equal(TransactionStep.Inside, boundaries.Observe(Query(950, "XA END X'63',X'',1")));
        Assert.Equal(TransactionStep.Prepared, boundaries.Observe(XaPrepare(990, onePhase: false)));
        Assert.False(boundaries.InXa);
    }

    [Fact]
    public void A_new_binlog_file_inside_a_transaction_is_refused()
    {
        var boundaries = new TransactionBoundaries();
        boundaries.Observe(MariaGtid(100));
        boundaries.Observe(Rows(300, 1));
        Assert.Throws<BinlogStreamException>(() => boundaries.Observe(Format(256)));
        var quiet = new TransactionBoundaries();
        Assert.Equal(TransactionStep.Outside, quiet.Observe(Format(256)));
    }

    [Fact]
    public void Reconnect_mid_transaction_drops_what_was_handed_out_and_delivers_the_rest_once()
    {
        var cursor = new DeliveryCursor();
        cursor.Start(new BinlogCoordinates(File, 4, null));
        var delivered = new List<BinlogEvent>();
        void Feed(params BinlogEvent[] events)
        {
            foreach (BinlogEvent e in events)
            {
                if (cursor.Accept(e) is not null)
                {
                    delivered.Add(e);
                }
            }
        }

        Feed(MariaGtid(100), Query(150, "BEGIN"), Xid(180)); // an earlier transaction: LastCommitted 180
        Feed(MariaGtid(220), TableMap(260), Rows(300, 1, 2), Rows(340, 3));
        Assert.Equal(new BinlogCoordinates(File, 180, null), cursor.LastCommitted);

        // The connection drops; the server resends from 180: preamble, then the same events at the same offsets.
        cursor.Reconnecting();
        Assert.True(cursor.Skipping);
        Feed(FakeRotate(File, 180), Format(0), MariaGtid(220), TableMap(260), Rows(300, 1, 2), Rows(340, 3), Rows(380, 4), Xid(410));
        Assert.False(cursor.Skipping);
        Assert.Equal([1, 2, 3, 4], delivered.OfType<RowsEvent>().SelectMany(r => r.Rows).Select(r => (int)r.After![0]!));
        Assert.Single(delivered.OfType<MariaDbGtidEvent>(), g => g.Header.NextPosition == 220);
        Assert.DoesNotContain(delivered, e => e is FormatDescriptionEvent or RotateEvent);
        Assert.Equal(new BinlogCoordinates(File, 410, null), cursor.LastCommitted);
    }

    [Fact]
    public void Reconnect_between_transactions_skips_nothing()
    {
        var cursor = new DeliveryCursor();
        cursor.Start(new BinlogCoordinates(File, 4, null));
        Assert.NotNull(cursor.Accept(MariaGtid(100)));
        Assert.NotNull(cursor.Accept(Rows(150, 1)));
        Assert.NotNull(cursor.Accept(Xid(180)));
        cursor.Reconnecting();
        Assert.False(cursor.Skipping);
        Assert.Equal(TransactionStep.Outside, cursor.Accept(FakeRotate(File, 180)));
        Assert.Equal(TransactionStep.Outside, cursor.Accept(Format(0)));
        Assert.Equal(TransactionStep.Inside, cursor.Accept(MariaGtid(220)));
        Assert.Equal(new BinlogCoordinates(File, 180, null), cursor.LastCommitted);
    }

    [Fact]
    public void Rotation_between_groups_moves_the_resume_point_and_the_start_counts_until_a_commit()
    {
        var cursor = new DeliveryCursor();
        cursor.Start(new BinlogCoordinates(File, 4, null));
        Assert.Equal(new BinlogCoordinates(File, 4, null), cursor.LastCommitted);
        cursor.Accept(MariaGtid(100));
        cursor.Accept(Rows(150, 1));
        Assert.Equal(new BinlogCoordinates(File, 4, null), cursor.LastCommitted); // inside: nothing to resume from yet
        cursor.Accept(Xid(180));
        cursor.Accept(At(new RotateEvent(Header(BinlogEventType.Rotate, 220), 4, "binlog.000004")));
        Assert.Equal(new BinlogCoordinates("binlog.000004", 4, null), cursor.LastCommitted);
    }

    [Fact]
    public void A_transaction_gone_from_the_binlog_after_a_reconnect_is_refused()
    {
        var cursor = new DeliveryCursor();
        cursor.Start(new BinlogCoordinates(File, 4, null));
        cursor.Accept(MariaGtid(100));
        cursor.Accept(Rows(150, 1));
        cursor.Reconnecting();
        Assert.Null(cursor.Accept(FakeRotate(File, 4)));
        Assert.Null(cursor.Accept(Format(0)));
        // The file now ends before the mark (the server truncated the unfinished group) and the next one begins.
        Assert.Throws<BinlogStreamException>(() => cursor.Accept(FakeRotate("binlog.000004", 4)));
    }

    [Fact]
    public async Task Feed_streams_rows_before_the_commit_and_sends_a_position_only_at_transaction_ends()
    {
        var channel = Channel.CreateUnbounded<ReplicationMessage>();
        BinlogEvent[] events =
        [
            MariaGtid(100), Query(150, "SAVEPOINT `a`"), TableMap(200), Rows(300, 1, 2), Rows(340, 3), Xid(380),
            MariaGtid(420, standalone: true), Query(480, "ALTER TABLE other ADD COLUMN c INT"),
            MariaGtid(520, preparedXa: true), Query(600, "XA END X'61',X'',1"), XaPrepare(640, onePhase: false),
        ];
        var feed = new MySqlChangeFeed(events.ToAsyncEnumerable(), "shop", "items", [0]);
        await feed.RunAsync(channel.Writer, CancellationToken.None);
        List<string> seen = [];
        await foreach (ReplicationMessage m in channel.Reader.ReadAllAsync())
        {
            seen.Add(m switch
            {
                RowChangeMessage r => "row " + r.Change.Key.Values[0],
                PositionMessage p => "at " + p.Position,
                _ => "?",
            });
        }

        Assert.Equal(["row 1", "row 2", "row 3", $"at {File}:380", $"at {File}:480", $"at {File}:640"], seen);
    }

    [Fact]
    public void A_group_starts_where_its_first_event_begins()
    {
        var boundaries = new TransactionBoundaries();
        Assert.Null(boundaries.GroupStart);
        boundaries.Observe(MariaGtid(100, preparedXa: true));
        Assert.Equal(new BinlogCoordinates(File, 70, null), boundaries.GroupStart); // 100 minus the event's 30 bytes
        boundaries.Observe(Rows(300, 1));
        Assert.Equal(70, boundaries.GroupStart!.Value.Position);
        boundaries.Observe(XaPrepare(400, onePhase: false));
        Assert.Null(boundaries.GroupStart);

        // MySQL without GTIDs: BEGIN or XA START opens the group; a BEGIN after a GTID does not move its start.
        boundaries.Observe(Query(500, "XA START X'61',X'',1"));
        Assert.Equal(470, boundaries.GroupStart!.Value.Position);
        boundaries.Observe(XaPrepare(600, onePhase: true));
        boundaries.Observe(MySqlGtid(700));
        boundaries.Observe(Query(750, "BEGIN"));
        Assert.Equal(670, boundaries.GroupStart!.Value.Position);
    }

    [Fact]
    public async Task A_prepared_xa_transaction_is_held_until_its_commit_and_the_resume_point_stays_at_its_prepare()
    {
        List<string> seen = await FeedAsync(
        [
            .. PreparedGroup(100, "x", 1, 2),   // group from 70 to 140
            .. Committed(200, 3),               // an ordinary transaction commits meanwhile: it streams at once
            .. Completion(300, "COMMIT", "x"),
            .. Committed(400, 4),
        ]);

        Assert.Equal(
        [
            "at 140 resume 70",
            "row 3", "at 230 resume 70",
            "row 1", "row 2", "at 310",         // delivered at the XA COMMIT, whole, before its position
            "row 4", "at 430",
        ], seen);
    }

    [Fact]
    public async Task A_rolled_back_xa_transaction_is_dropped_and_an_unknown_xid_is_only_a_position()
    {
        var xa = new PreparedXaTransactions();
        List<string> seen = await FeedAsync(
        [
            .. PreparedGroup(100, "gone", 1),
            .. Completion(200, "ROLLBACK", "gone"),
            .. Completion(300, "COMMIT", "never-seen"), // prepared before the stream started (the run refuses those)
        ], xa);

        Assert.Equal(["at 140 resume 70", "at 210", "at 310"], seen);
        Assert.Equal(0, xa.HeldRows);
        Assert.Null(xa.DescribeHeld());
    }

    [Fact]
    public async Task Interleaved_xa_transactions_are_delivered_in_commit_order_and_the_resume_point_follows_the_oldest()
    {
        var xa = new PreparedXaTransactions();
        List<string> seen = await FeedAsync(
        [
            .. PreparedGroup(100, "a", 1),     // starts at 70
            .. PreparedGroup(200, "b", 2),     // starts at 170
            .. PreparedGroup(300, "c", 3),     // starts at 270
            .. Completion(400, "COMMIT", "b"),
            .. Completion(500, "COMMIT", "a"), // the oldest goes: the resume point moves to c's start
            .. Completion(600, "ROLLBACK", "c"),
        ], xa);

        Assert.Equal(
        [
            "at 140 resume 70", "at 240 resume 70", "at 340 resume 70",
            "row 2", "at 410 resume 70",
            "row 1", "at 510 resume 270",
            "at 610",
        ], seen);
    }

    [Fact]
    public async Task An_xa_transaction_without_rows_of_the_table_holds_nothing_back()
    {
        var xa = new PreparedXaTransactions();
        BinlogEvent[] other =
        [
            MariaGtid(100, preparedXa: true), Query(130, "XA END X'6f',X'',1"), XaPrepare(140, onePhase: false, "o"),
        ];
        Assert.Equal(["at 140"], await FeedAsync(other, xa));
        Assert.True(xa.SawPrepared(XaId.FromBytes(1, "o"u8, [])));
        Assert.Null(xa.OldestHeldStart);
    }

    [Fact]
    public async Task Xa_committed_in_one_phase_is_an_ordinary_transaction()
    {
        // MySQL's XA COMMIT ... ONE PHASE: XA START ... XA END, then a one-phase XA_PREPARE_LOG.
        BinlogEvent[] committed = [MySqlGtid(100), Query(150, "XA START X'61',X'',1"), TableMap(200), Rows(300, 1), Query(340, "XA END X'61',X'',1"), XaPrepare(380, onePhase: true)];
        Assert.Equal(["row 1", "at 380"], await FeedAsync(committed));

        // MariaDB logs it as a plain transaction: START TRANSACTION (a GTID not flagged as XA), rows, XID.
        Assert.Equal(["row 5", "at 230"], await FeedAsync(Committed(200, 5)));
    }

    [Fact]
    public async Task Holding_more_rows_than_the_cap_stops_the_feed_with_a_clear_error()
    {
        var xa = new PreparedXaTransactions(maxHeldRows: 3);
        var error = await Assert.ThrowsAsync<OscException>(() => FeedAsync([.. PreparedGroup(100, "a", 1, 2), .. PreparedGroup(200, "b", 3, 4)], xa));
        Assert.Contains("more than 3 row changes of shop.items", error.Message, StringComparison.Ordinal);
        Assert.Contains("XA RECOVER", error.Hint, StringComparison.Ordinal);

        // Within the cap, once the first is committed, there is room again.
        List<string> seen = await FeedAsync([.. PreparedGroup(100, "a", 1, 2), .. Completion(200, "COMMIT", "a"), .. PreparedGroup(300, "b", 3, 4)],
            new PreparedXaTransactions(maxHeldRows: 3));
        Assert.Equal(["at 140 resume 70", "row 1", "row 2", "at 210", "at 340 resume 270"], seen);
    }

    [Fact]
    public async Task The_commit_is_passed_on_only_once_the_server_says_it_is_visible()
    {
        var waited = new List<XaId>();
        var xa = new PreparedXaTransactions(waitUntilCommitted: (xid, _) =>
        {
            waited.Add(xid);
            return Task.CompletedTask;
        });
        await FeedAsync([.. PreparedGroup(100, "a", 1), .. PreparedGroup(200, "none"), .. Completion(300, "COMMIT", "none"), .. Completion(400, "COMMIT", "a")], xa);
        Assert.Equal([XaId.FromBytes(1, "a"u8, [])], waited); // only a commit with rows to pass on waits
    }
}
