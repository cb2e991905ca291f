using NpgsqlTypes;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Tests.Postgres;

public sealed class PostgresReplicationNamesTests
{
    [Fact]
    public void Names_start_with_osc_and_the_table_and_end_in_a_hash()
    {
        var names = new PostgresReplicationNames("shop", new TableName("public", "orders"));

        Assert.Matches("^osc_orders_[0-9a-f]{8}$", names.Slot);
        Assert.Equal(names.Slot, names.Publication);
    }

    [Fact]
    public void A_63_character_mixed_case_table_name_gives_a_valid_slot_name_within_the_limit()
    {
        string table = "Orders-" + new string('X', 56);
        var names = new PostgresReplicationNames("shop", new TableName("sales", table));

        Assert.True(names.Slot.Length <= PostgresReplicationNames.MaxLength, names.Slot);
        Assert.Matches("^[a-z0-9_]+$", names.Slot);
    }

    [Fact]
    public void The_same_table_in_two_databases_or_schemas_gets_different_slots_and_the_same_table_the_same_one()
    {
        var a = new PostgresReplicationNames("shop", new TableName("public", "orders"));
        var b = new PostgresReplicationNames("shop_test", new TableName("public", "orders"));
        var c = new PostgresReplicationNames("shop", new TableName("archive", "orders"));
        var again = new PostgresReplicationNames("shop", new TableName(null, "orders"));

        Assert.NotEqual(a.Slot, b.Slot);
        Assert.NotEqual(a.Slot, c.Slot);
        Assert.Equal(a.Slot, again.Slot);
    }

    [Fact]
    public void Positions_order_by_lsn_and_round_trip_through_text()
    {
        var early = new PostgresLsnPosition(NpgsqlLogSequenceNumber.Parse("0/16B3748"));
        var late = PostgresLsnPosition.Parse("1/0000010");

        Assert.True(early < late);
        Assert.Equal(late, PostgresLsnPosition.Parse(late.ToString()));
    }
}
