using System.Text;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;
using static OnlineSchemaChange.Tests.MySql.EventBytes;

namespace OnlineSchemaChange.Tests.MySql;

/// <summary>The XID of a two-phase XA transaction, as XA_PREPARE_LOG_EVENT carries it and as the XA COMMIT / XA
/// ROLLBACK statement names it.</summary>
public sealed class XaEventTests
{
    private static XaId Id(string gtrid, string bqual = "", long format = 1) => XaId.FromBytes(format, Encoding.UTF8.GetBytes(gtrid), Encoding.UTF8.GetBytes(bqual));

    private static BinlogEventDecoder NewDecoder()
    {
        var decoder = new BinlogEventDecoder(null, "binlog.000002");
        decoder.Decode(FormatDescription(crc: true));
        return decoder;
    }

    // Layout (MariaDB log_event_server.cc, MySQL control_events.h): u8 one phase, u32 formatID, u32 gtrid length,
    // u32 bqual length, gtrid, bqual.
    [Fact]
    public void Xa_prepare_log_carries_one_phase_and_the_xid()
    {
        var body = new EventBytes().U8(0).U32(7).U32(4).U32(4).Text("gtr1").Text("bq22").ToArray();
        var prepare = Assert.IsType<XaPrepareEvent>(NewDecoder().Decode(Event(BinlogEventType.XaPrepare, body, 704)));
        Assert.False(prepare.OnePhase);
        Assert.Equal(Id("gtr1", "bq22", 7), prepare.Xid);
        Assert.Equal("X'67747231',X'62713232',7", prepare.Xid.ToString());

        var onePhase = new EventBytes().U8(1).U32(1).U32(2).U32(0).Bytes(0x00, 0xFF).ToArray();
        var committed = Assert.IsType<XaPrepareEvent>(NewDecoder().Decode(Event(BinlogEventType.XaPrepare, onePhase, 800)));
        Assert.True(committed.OnePhase);
        Assert.Equal(new XaId(1, "00FF", ""), committed.Xid);
    }

    /// <summary>The 44 bytes MariaDB 10.11.19 wrote for <c>XA PREPARE 'gtr1','bq22',7</c> (at 660 of its binlog, CRC32 on).</summary>
    [Fact]
    public void Xa_prepare_log_captured_from_mariadb_decodes()
    {
        byte[] captured = Convert.FromHexString(
            "7FB9066B" + "26" + "07000000" + "2C000000" + "C0020000" + "0000"                 // header: type 0x26, length 44, next 704
            + "00" + "07000000" + "04000000" + "04000000" + "67747231" + "62713232"        // one phase, formatID, lengths, gtrid, bqual
            + "C75AC57B");                                                                // CRC32
        var prepare = Assert.IsType<XaPrepareEvent>(NewDecoder().Decode(captured));
        Assert.Equal(Id("gtr1", "bq22", 7), prepare.Xid);
        Assert.False(prepare.OnePhase);
        Assert.Equal(new BinlogCoordinates("binlog.000002", 704, null), prepare.Coordinates);
    }

    [Fact]
    public void Lengths_beyond_the_event_are_refused()
    {
        var body = new EventBytes().U8(0).U32(1).U32(40).U32(0).Text("short").ToArray();
        Assert.ThrowsAny<Exception>(() => NewDecoder().Decode(Event(BinlogEventType.XaPrepare, body)));
    }

    [Theory]
    [InlineData("XA COMMIT X'67747231',X'62713232',7", "gtr1", "bq22", 7, true, false)] // as MariaDB and MySQL log it
    [InlineData("XA ROLLBACK X'61622763',X'',1", "ab'c", "", 1, false, false)]
    [InlineData("XA COMMIT 'gtr1','bq22',7", "gtr1", "bq22", 7, true, false)]
    [InlineData("xa commit 'ab''c'", "ab'c", "", 1, true, false)]
    [InlineData("XA COMMIT \"a\\\"b\"", "a\"b", "", 1, true, false)]
    [InlineData("XA COMMIT 0x6162 , 0x63  one phase", "ab", "c", 1, true, true)]
    [InlineData("XA ROLLBACK b'0110000101100010'", "ab", "", 1, false, false)]
    [InlineData("XA COMMIT /* app */ 'x', '', -1", "x", "", -1, true, false)]
    public void Completion_statements_name_the_xid_however_it_is_spelt(string sql, string gtrid, string bqual, long format, bool commit, bool onePhase)
    {
        Assert.True(XaId.TryParseCompletion(sql, out XaCompletion completion));
        Assert.Equal(new XaCompletion(Id(gtrid, bqual, format), commit, onePhase), completion);
        Assert.Equal(completion, new QueryEvent(default, 1, 0, "", sql).XaCompletion);
    }

    [Theory]
    [InlineData("XA COMMIT")]
    [InlineData("XA RECOVER")]
    [InlineData("XA END X'61',X'',1")]
    [InlineData("XA COMMIT 'a' 'b'")]
    [InlineData("XA COMMIT X'6'x")]
    [InlineData("XA COMMITTED 'a'")]
    [InlineData("XA COMMIT 'unterminated")]
    [InlineData("COMMIT")]
    public void Anything_else_is_not_a_completion(string sql) => Assert.False(XaId.TryParseCompletion(sql, out _));

    [Fact]
    public void The_same_xid_spelt_differently_is_one_transaction()
    {
        Assert.True(XaId.TryParseCompletion("XA COMMIT 'gtr1','bq22',7", out XaCompletion quoted));
        Assert.True(XaId.TryParseCompletion("XA COMMIT X'67747231',X'62713232',7", out XaCompletion hex));
        Assert.Equal(quoted.Xid, hex.Xid);
        Assert.NotEqual(Id("gtr1", "bq22", 7), Id("gtr1", "bq22", 1));
        Assert.NotEqual(Id("gtr1bq22"), Id("gtr1", "bq22"));
    }

    [Fact]
    public void A_binlog_position_resumes_at_the_oldest_held_prepare_only_when_that_is_earlier()
    {
        var held = new MySqlBinlogPosition("binlog.000002", 379);
        var later = new MySqlBinlogPosition("binlog.000003", 900, held);
        Assert.Equal(held, later.ResumePoint);
        Assert.Equal("binlog.000002:379", later.ResumePoint.ToString());
        Assert.Equal("binlog.000003:900", later.ToString()); // the position itself, for drains, is unchanged
        var plain = new MySqlBinlogPosition("binlog.000003", 900);
        Assert.Same(plain, plain.ResumePoint);
        Assert.Equal(0, later.CompareTo(plain));
    }

    [Fact]
    public void Held_transactions_are_counted_and_described_until_completed()
    {
        var xa = new PreparedXaTransactions();
        var rows = new List<OnlineSchemaChange.Core.Changes.RowChange> { OnlineSchemaChange.Core.Changes.RowChange.Delete(new RowKey(1)) };
        xa.Prepared(Id("a"), new MySqlBinlogPosition("binlog.000002", 500), rows);
        xa.Prepared(Id("b"), new MySqlBinlogPosition("binlog.000002", 300), []);
        Assert.Equal(1, xa.HeldTransactions);
        Assert.Equal(1, xa.HeldRows);
        Assert.Equal(500, xa.OldestHeldStart!.Position); // b holds nothing, so it holds nothing back
        Assert.Contains("X'61',X'',1 (1 row changes, prepared at binlog.000002:500)", xa.DescribeHeld(), StringComparison.Ordinal);
        Assert.Single(xa.Complete(Id("a")));
        Assert.Empty(xa.Complete(Id("a")));
        Assert.Null(xa.DescribeHeld());
        Assert.Equal(0, xa.HeldRows);
    }
}
