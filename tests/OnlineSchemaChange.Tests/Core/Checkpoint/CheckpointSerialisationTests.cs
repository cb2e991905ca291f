using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.Tests.Core.Checkpoint;

public sealed class CheckpointSerialisationTests
{
    private static readonly TableName Table = new("db", "t");

    public static TheoryData<object?> KeyValues() => new()
    {
        null, "käse 'quoted'", true, (sbyte)-5, (byte)250, (short)-300, (ushort)65000, -70000, 4000000000u, long.MinValue, ulong.MaxValue,
        12345.6789m, 1.5f, Math.PI, new byte[] { 0, 255, 10 }, new DateTime(2024, 2, 29, 23, 59, 58, 123, DateTimeKind.Unspecified),
        new DateTimeOffset(2024, 1, 2, 3, 4, 5, TimeSpan.FromHours(2)), new DateOnly(1999, 12, 31), new TimeOnly(23, 1, 2), TimeSpan.FromHours(-838),
        Guid.Parse("5e4c1c1e-0000-4000-8000-000000000001"),
    };

    [Theory]
    [MemberData(nameof(KeyValues))]
    public void A_watermark_comes_back_as_the_same_value_of_the_same_type(object? value)
    {
        var checkpoint = new MigrationCheckpoint("MODIFY K BIGINT", "abc", new RowKey(value, 7L), false, "binlog.000012:4567", 1234, DateTimeOffset.UnixEpoch.AddDays(20000));

        MigrationCheckpoint back = CheckpointJson.Deserialize(CheckpointJson.Serialize(checkpoint));

        Assert.Equal(checkpoint.Watermark, back.Watermark);
        Assert.Equal(value?.GetType(), back.Watermark!.Values[0]?.GetType());
        Assert.Equal(checkpoint, back with { Watermark = checkpoint.Watermark });
    }

    [Fact]
    public void The_ranges_copied_beyond_the_watermark_come_back_in_order()
    {
        var checkpoint = new MigrationCheckpoint("X", "d", new RowKey(10L, 2), false, "p:1", 10, DateTimeOffset.UnixEpoch)
        {
            CopiedAhead = [new CopiedRange(new RowKey(20L, 1), new RowKey(30L, 5)), new CopiedRange(new RowKey(40L, 0), null)],
        };

        MigrationCheckpoint back = CheckpointJson.Deserialize(CheckpointJson.Serialize(checkpoint));

        Assert.Equal(checkpoint.CopiedAhead, back.CopiedAhead);
        Assert.Equal(checkpoint, back);
        Assert.NotEqual(checkpoint, back with { CopiedAhead = back.CopiedAhead.Take(1).ToArray() });
    }

    [Fact]
    public void A_checkpoint_without_copied_ranges_reads_as_none()
    {
        var checkpoint = new MigrationCheckpoint("X", "d", new RowKey(10L), false, "p:1", 10, DateTimeOffset.UnixEpoch);
        string text = CheckpointJson.Serialize(checkpoint).Replace(",\"copiedAhead\":[]", "", StringComparison.Ordinal);
        Assert.DoesNotContain("copiedAhead", text, StringComparison.Ordinal);

        Assert.Empty(CheckpointJson.Deserialize(text).CopiedAhead);
    }

    [Fact]
    public void A_finished_copy_has_no_watermark()
    {
        var checkpoint = new MigrationCheckpoint("X", "d", null, true, "p:1", 10, DateTimeOffset.UnixEpoch);

        MigrationCheckpoint back = CheckpointJson.Deserialize(CheckpointJson.Serialize(checkpoint));

        Assert.Null(back.Watermark);
        Assert.True(back.CopyFinished);
    }

    [Fact]
    public void A_key_value_of_an_unknown_type_is_refused_when_written()
    {
        var checkpoint = new MigrationCheckpoint("X", "d", new RowKey(new Uri("http://example.com")), false, "p:1", 0, DateTimeOffset.UnixEpoch);

        Assert.Throws<NotSupportedException>(() => CheckpointJson.Serialize(checkpoint));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"version\":2}")]
    [InlineData("{\"version\":1,\"statement\":\"x\"}")]
    public void An_unreadable_checkpoint_is_an_error_that_points_to_cleanup(string text)
    {
        var error = Assert.ThrowsAny<OscException>(() => CheckpointJson.Deserialize(text));

        Assert.Contains("osc cleanup", error.Hint, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("MODIFY k BIGINT NOT NULL", "modify   k bigint   not null")]
    [InlineData("MODIFY k BIGINT NOT NULL", "ALTER TABLE t MODIFY k BIGINT NOT NULL;")]
    [InlineData("MODIFY k BIGINT NOT NULL", "MODIFY k BIGINT NOT NULL, ALGORITHM=COPY")]
    [InlineData("ADD COLUMN c INT, ADD INDEX ix (c)", "add column c int /* why */, add index ix(c)")]
    public void The_same_change_spelled_differently_has_the_same_digest(string a, string b)
    {
        Assert.Equal(Digest(a).Digest, Digest(b).Digest);
    }

    [Theory]
    [InlineData("MODIFY k BIGINT NOT NULL", "MODIFY k INT UNSIGNED NOT NULL")]
    [InlineData("ADD COLUMN c VARCHAR(10) DEFAULT 'a'", "ADD COLUMN c VARCHAR(10) DEFAULT 'A'")]
    [InlineData("ADD COLUMN `C` INT", "ADD COLUMN `c` INT")]
    public void A_different_change_has_a_different_digest(string a, string b)
    {
        Assert.NotEqual(Digest(a).Digest, Digest(b).Digest);
    }

    [Fact]
    public void The_digest_covers_the_table_and_its_definition()
    {
        var statement = AlterStatement.Parse("MODIFY k BIGINT", Table, SqlDialect.MySql);
        string digest = MigrationDigest.Compute("db.t", "k int(11)", statement, SqlDialect.MySql).Digest;

        Assert.NotEqual(digest, MigrationDigest.Compute("db.u", "k int(11)", AlterStatement.Parse("MODIFY k BIGINT", new TableName("db", "u"), SqlDialect.MySql), SqlDialect.MySql).Digest);
        Assert.NotEqual(digest, MigrationDigest.Compute("db.t", "k int(11) NOT NULL", statement, SqlDialect.MySql).Digest);
        Assert.Equal(64, digest.Length);
    }

    [Theory]
    [InlineData("binlog.000012", 4567L)]
    [InlineData("mysql-bin:odd.000003", 4L)]
    public void A_binlog_position_survives_its_text_form(string file, long offset)
    {
        var position = new MySqlBinlogPosition(file, offset);

        MySqlBinlogPosition back = MySqlBinlogPosition.Parse(position.ToString());

        Assert.Equal(file, back.File);
        Assert.Equal(offset, back.Position);
        Assert.Equal(position, back);
    }

    [Theory]
    [InlineData("binlog.000012")]
    [InlineData("binlog.000012:")]
    [InlineData("binlog.000012:-4")]
    [InlineData(":4")]
    public void A_malformed_binlog_position_is_refused(string text)
    {
        Assert.Throws<FormatException>(() => MySqlBinlogPosition.Parse(text));
    }

    private static MigrationDigest Digest(string alter) =>
        MigrationDigest.Compute("db.t", "k int(11) NOT NULL; key id", AlterStatement.Parse(alter, Table, SqlDialect.MySql), SqlDialect.MySql);
}
