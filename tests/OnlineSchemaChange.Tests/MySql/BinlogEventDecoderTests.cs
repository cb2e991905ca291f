using System.Text;
using OnlineSchemaChange.MySql.Binlog;
using static OnlineSchemaChange.Tests.MySql.EventBytes;

namespace OnlineSchemaChange.Tests.MySql;

// Event layouts: MySQL libbinlogevents (binlog_event.h, control_events.h, rows_event.h) and MariaDB log_event.h;
// summarized in the facts sheet section 1. Rows v2, MySQL GTID and TRANSACTION_PAYLOAD are MySQL 8 forms.
public sealed class BinlogEventDecoderTests
{
    private sealed class Schemas(params TableSchema[] tables) : ITableSchemaProvider
    {
        public TableSchema? Find(string database, string table) => tables.FirstOrDefault(t => t.Database == database && t.Table == table);
    }

    private static readonly TableSchema Items = new("shop", "items",
    [
        new ColumnSchema("id", "int", true, null),
        new ColumnSchema("name", "varchar", false, "utf8mb4"),
        new ColumnSchema("price", "decimal", false, null),
    ]);

    private static readonly ColumnType[] ItemTypes = [ColumnType.Long, ColumnType.VarChar, ColumnType.NewDecimal];
    private static readonly byte[] ItemMetadata = [200, 0, 10, 2]; // VARCHAR(50) utf8mb4 = 200 bytes; DECIMAL(10,2)

    private static BinlogEventDecoder NewDecoder(bool crc = true)
    {
        var decoder = new BinlogEventDecoder(new Schemas(Items), "binlog.000007");
        decoder.Decode(FormatDescription(crc));
        return decoder;
    }

    private static byte[] ItemRow(uint id, string? name, string price)
    {
        var b = new EventBytes().U8(name is null ? 0b010 : 0).U32(id);
        if (name is not null)
        {
            b.U8(Encoding.UTF8.GetByteCount(name)).Text(name);
        }

        return b.Bytes(ValueEncodings.Decimal(price, 10, 2)).ToArray();
    }

    [Fact]
    public void Format_description_sets_checksum_and_post_header_lengths()
    {
        var decoder = new BinlogEventDecoder();
        var fde = Assert.IsType<FormatDescriptionEvent>(decoder.Decode(FormatDescription(crc: true, "8.0.36-log")));
        Assert.Equal(ChecksumAlgorithm.Crc32, fde.Checksum);
        Assert.Equal("8.0.36-log", fde.ServerVersion);
        Assert.Equal(10, fde.PostHeaderLength(BinlogEventType.WriteRowsV2));
        var plain = new BinlogEventDecoder();
        Assert.Equal(ChecksumAlgorithm.None, Assert.IsType<FormatDescriptionEvent>(plain.Decode(FormatDescription(crc: false))).Checksum);
        Assert.IsType<XidEvent>(plain.Decode(Event(BinlogEventType.Xid, new EventBytes().U64(9).ToArray(), crc: false)));
    }

    // The server computes a FORMAT_DESCRIPTION's checksum before setting LOG_EVENT_BINLOG_IN_USE_F (0x1).
    [Fact]
    public void Format_description_checksum_ignores_the_in_use_flag()
    {
        var fde = FormatDescription(crc: true);
        fde[17] |= 0x01;
        Assert.IsType<FormatDescriptionEvent>(new BinlogEventDecoder().Decode(fde));
    }

    [Fact]
    public void A_corrupt_checksum_is_an_error_that_names_file_and_position()
    {
        var decoder = NewDecoder();
        var xid = Event(BinlogEventType.Xid, new EventBytes().U64(5).ToArray(), nextPosition: 531);
        xid[20] ^= 0x40;
        var ex = Assert.Throws<BinlogDecodeException>(() => decoder.Decode(xid));
        Assert.Contains("binlog.000007:500", ex.Message, StringComparison.Ordinal);
        Assert.Contains("CRC32", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rotate_query_and_xid_carry_coordinates()
    {
        var decoder = NewDecoder();
        var rotate = Assert.IsType<RotateEvent>(decoder.Decode(Event(BinlogEventType.Rotate, new EventBytes().U64(4).Text("binlog.000008").ToArray(), 0)));
        Assert.Equal(("binlog.000008", 4UL), (rotate.NextFile, rotate.Position));
        Assert.Equal("binlog.000008", decoder.CurrentFile);
        // QUERY post-header: thread id, exec time, db length, error code, status vars length; then vars, db\0, SQL.
        var query = new EventBytes().U32(77).U32(0).U8(4).U16(0).U16(3).Bytes(1, 2, 3).Text("shop").U8(0).Text("BEGIN").ToArray();
        var begin = Assert.IsType<QueryEvent>(decoder.Decode(Event(BinlogEventType.Query, query, 300)));
        Assert.True(begin.IsBegin);
        Assert.Equal(("shop", 77u), (begin.Database, begin.ThreadId));
        Assert.Equal(new BinlogCoordinates("binlog.000008", 300, null), begin.Coordinates);
    }

    [Fact]
    public void Mysql_gtid_belongs_to_every_event_of_its_transaction_until_xid()
    {
        var decoder = NewDecoder();
        var sid = Guid.Parse("3e11fa47-71ca-11e1-9e33-c80aa9429562");
        var gtidBody = new EventBytes().U8(1).Bytes(sid.ToByteArray(bigEndian: true)).U64(23).U8(2).U64(0).U64(0).ToArray();
        var gtid = Assert.IsType<MySqlGtidEvent>(decoder.Decode(Event(BinlogEventType.Gtid, gtidBody, 200)));
        Assert.Equal("3e11fa47-71ca-11e1-9e33-c80aa9429562:23", gtid.Gtid);
        Assert.Equal(gtid.Gtid, gtid.Coordinates.Gtid);
        var xid = decoder.Decode(Event(BinlogEventType.Xid, new EventBytes().U64(5).ToArray(), 260));
        Assert.Equal(gtid.Gtid, xid.Coordinates.Gtid);
        Assert.Null(decoder.CurrentGtid);
    }

    [Fact]
    public void Mariadb_gtid_and_gtid_list()
    {
        var decoder = NewDecoder();
        var gtid = Assert.IsType<MariaDbGtidEvent>(decoder.Decode(Event(BinlogEventType.MariaDbGtid, new EventBytes().U64(1234).U32(3).U8(1).Bytes(new byte[6]).ToArray())));
        Assert.Equal("3-1-1234", gtid.Gtid);
        Assert.True(gtid.IsStandalone);
        var list = Assert.IsType<MariaDbGtidListEvent>(decoder.Decode(Event(BinlogEventType.MariaDbGtidList,
            new EventBytes().U32(2).U32(0).U32(1).U64(10).U32(5).U32(2).U64(99).ToArray())));
        Assert.Equal(["0-1-10", "5-2-99"], list.Gtids);
    }

    [Fact]
    public void Write_rows_v1_decodes_every_row_with_schema_names()
    {
        var decoder = NewDecoder();
        decoder.Decode(TableMap(42, "shop", "items", ItemTypes, ItemMetadata));
        var rows = Assert.IsType<RowsEvent>(decoder.Decode(Rows(BinlogEventType.WriteRowsV1, 42, 3, [0b111], null,
            [.. ItemRow(1, "Käse", "12.50"), .. ItemRow(4000000000, null, "-0.99")])));
        Assert.Equal(RowsEventKind.Insert, rows.Kind);
        Assert.Equal(2, rows.Rows.Length);
        Assert.Null(rows.Rows[0].Before);
        Assert.Equal(new object?[] { 1u, "Käse", 12.50m }, rows.Rows[0].After);
        Assert.Equal(new object?[] { 4000000000u, null, -0.99m }, rows.Rows[1].After);
        Assert.Equal("price", rows.ColumnName(2));
    }

    [Fact]
    public void Update_rows_v2_pairs_before_and_after_and_skips_extra_data()
    {
        var decoder = NewDecoder();
        decoder.Decode(TableMap(42, "shop", "items", ItemTypes, ItemMetadata));
        var extra = new byte[] { 0x00, 0x01, 0x07 }; // an extra-row-info TLV (ndb info); skipped by its length
        var rows = Assert.IsType<RowsEvent>(decoder.Decode(Rows(BinlogEventType.UpdateRowsV2, 42, 3, [0b111], [0b111],
            [.. ItemRow(1, "a", "1.00"), .. ItemRow(1, "b", "2.00"), .. ItemRow(2, "c", "3.00"), .. ItemRow(2, null, "3.00")], v2Extra: extra)));
        Assert.Equal(RowsEventKind.Update, rows.Kind);
        Assert.Equal(2, rows.Rows.Length);
        Assert.Equal(new object?[] { 1u, "a", 1.00m }, rows.Rows[0].Before);
        Assert.Equal(new object?[] { 1u, "b", 2.00m }, rows.Rows[0].After);
        Assert.Equal(new object?[] { 2u, null, 3.00m }, rows.Rows[1].After);
    }

    // With binlog_row_image=MINIMAL only some columns are present; each null bitmap counts present columns only.
    [Fact]
    public void Null_bitmap_is_sized_by_present_columns()
    {
        var types = Enumerable.Repeat(ColumnType.Tiny, 10).ToArray();
        var decoder = NewDecoder();
        decoder.Decode(TableMap(7, "shop", "wide", types, []));
        // Present: columns 0 and 9. Null bitmap: 1 byte for 2 present columns; column 9 (second present) is null.
        var rows = Assert.IsType<RowsEvent>(decoder.Decode(Rows(BinlogEventType.DeleteRowsV1, 7, 10, [0b0000_0001, 0b0000_0010], null, [0b10, 5])));
        var before = rows.Rows[0].Before!;
        Assert.Equal((sbyte)5, before[0]);
        Assert.Null(before[9]);
        Assert.All(before[1..9], v => Assert.Same(RowValues.NotPresent, v));
        Assert.Null(rows.Rows[0].After);
    }

    [Fact]
    public void Mariadb_compressed_rows_and_query()
    {
        var decoder = NewDecoder();
        decoder.Decode(TableMap(42, "shop", "items", ItemTypes, ItemMetadata));
        var inner = new EventBytes().Lenenc(3).U8(0b111).Bytes(ItemRow(9, "zip", "7.00")).ToArray();
        var body = new EventBytes().U48(42).U16(1).Bytes(MariaDbCompress(inner)).ToArray();
        var rows = Assert.IsType<RowsEvent>(decoder.Decode(Event(BinlogEventType.MariaDbWriteRowsCompressedV1, body)));
        Assert.Equal(new object?[] { 9u, "zip", 7.00m }, rows.Rows[0].After);
        var sql = "UPDATE shop.items SET name = 'compressed' WHERE id = 9";
        var query = new EventBytes().U32(1).U32(0).U8(4).U16(0).U16(0).Text("shop").U8(0).Bytes(MariaDbCompress(Encoding.UTF8.GetBytes(sql))).ToArray();
        Assert.Equal(sql, Assert.IsType<QueryEvent>(decoder.Decode(Event(BinlogEventType.MariaDbQueryCompressed, query))).Sql);
    }

    [Fact]
    public void Transaction_payload_is_rejected_with_a_clear_error()
    {
        var decoder = NewDecoder();
        var ex = Assert.Throws<BinlogDecodeException>(() => decoder.Decode(Event(BinlogEventType.TransactionPayload, [1, 2, 3, 4], 900)));
        Assert.Contains("binlog_transaction_compression", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_events_are_skipped_by_length_and_heartbeats_name_the_file()
    {
        var decoder = NewDecoder();
        Assert.IsType<SkippedEvent>(decoder.Decode(Event((BinlogEventType)200, new byte[37])));
        Assert.Equal("binlog.000009", Assert.IsType<HeartbeatEvent>(decoder.Decode(Event(BinlogEventType.Heartbeat, "binlog.000009"u8.ToArray(), 0))).File);
    }

    [Fact]
    public void Rows_without_a_table_map_and_length_mismatches_are_errors()
    {
        var decoder = NewDecoder();
        Assert.Throws<BinlogDecodeException>(() => decoder.Decode(Rows(BinlogEventType.WriteRowsV1, 99, 1, [1], null, [0, 1])));
        var xid = Event(BinlogEventType.Xid, new EventBytes().U64(1).ToArray());
        Assert.Throws<BinlogDecodeException>(() => decoder.Decode(xid.AsSpan(0, xid.Length - 1)));
    }

    [Fact]
    public void Table_filter_skips_rows_of_other_tables()
    {
        var decoder = NewDecoder();
        decoder.TableFilter = map => map.Table != "items";
        decoder.Decode(TableMap(42, "shop", "items", ItemTypes, ItemMetadata));
        Assert.IsType<SkippedEvent>(decoder.Decode(Rows(BinlogEventType.WriteRowsV1, 42, 3, [0b111], null, ItemRow(1, "x", "1.00"))));
    }
}

public sealed class TableSchemaTests
{
    private static TableMapEvent Map(params ColumnType[] types) =>
        new(default, 1, "d", "t", types, new ushort[types.Length], new byte[(types.Length + 7) / 8]);

    [Fact]
    public void A_schema_from_after_a_ddl_is_not_applied_to_older_events()
    {
        var now = new TableSchema("d", "t", [new("b", "varchar", false, "utf8mb4"), new("id", "int", false, null)]);
        Assert.True(now.Describes(Map(ColumnType.VarChar, ColumnType.Long)));
        Assert.False(now.Describes(Map(ColumnType.Long, ColumnType.VarChar))); // same count, columns moved
        Assert.False(now.Describes(Map(ColumnType.Long))); // a column added since
        Assert.True(new TableSchema("d", "t", [new("j", "json", false, "utf8mb4")]).Describes(Map(ColumnType.Blob))); // MariaDB JSON
    }
}
