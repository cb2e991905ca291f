using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.Tests.MySql;

public sealed class MySqlTableChangeGuardTests
{
    [Theory]
    [InlineData("alter table t add column c int", true)]
    [InlineData("ALTER TABLE `t` ADD INDEX (k)", true)]
    [InlineData("alter table shop.t drop column c", true)]
    [InlineData("TRUNCATE t", true)]
    [InlineData("RENAME TABLE t TO t2", true)]
    [InlineData("analyze table t", true)]
    [InlineData("alter table tt add column c int", false)]
    [InlineData("alter table t2 add column c int", false)]
    [InlineData("create table t_copy like orders", false)]
    public void Names_the_table_only_as_a_whole_identifier(string sql, bool expected)
    {
        Assert.Equal(expected, MySqlTableChangeGuard.NamesTable(sql, "t"));
    }

    [Theory]
    [InlineData("ALTER TABLE `orders` ADD COLUMN c INT", true)]
    [InlineData("RENAME TABLE `shop`.`orders` TO `shop`.`orders_osc_old`, `shop`.`orders_osc_new` TO `shop`.`orders`", false)]
    [InlineData("CREATE TABLE `orders_osc_new` LIKE `orders`", false)]
    [InlineData("ALTER TABLE `orders_osc_new` ADD KEY `k` (`k`), ALGORITHM=INPLACE, LOCK=NONE", false)]
    [InlineData("DROP TABLE IF EXISTS `orders_osc_log`", false)]
    [InlineData("ALTER TABLE `customers` ADD COLUMN c INT", false)]
    public void Osc_s_own_statements_about_its_tables_do_not_concern_it(string sql, bool expected)
    {
        var guard = new MySqlTableChangeGuard("Server=unused", new TableName("shop", "orders"), new ShadowNames("orders", 64), "CREATE TABLE ...");
        Assert.Equal(expected, guard.Concerns(Statement(sql)));
    }

    [Fact]
    public void A_name_that_needs_quoting_is_found_in_its_quoted_form()
    {
        var guard = new MySqlTableChangeGuard("Server=unused", new TableName("shop", "we`ird"), new ShadowNames("we`ird", 64), "CREATE TABLE ...");
        Assert.True(guard.Concerns(Statement("ALTER TABLE `we``ird` ADD COLUMN c INT")));
    }

    [Fact]
    public async Task A_truncate_stops_the_migration_without_asking_the_server()
    {
        var guard = new MySqlTableChangeGuard("Server=unused", new TableName("shop", "orders"), new ShadowNames("orders", 64), "CREATE TABLE ...");
        TableChangedException e = await Assert.ThrowsAsync<TableChangedException>(() => guard.CheckAsync(Statement("TRUNCATE TABLE orders"), CancellationToken.None));
        Assert.Contains("shop.orders was truncated during the migration", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Once_disarmed_after_the_swap_nothing_is_checked()
    {
        var guard = new MySqlTableChangeGuard("Server=unused", new TableName("shop", "orders"), new ShadowNames("orders", 64), "CREATE TABLE ...");
        guard.Disarm();
        await guard.CheckAsync(Statement("TRUNCATE TABLE orders"), CancellationToken.None);
    }

    private static QueryEvent Statement(string sql) =>
        new(new BinlogEventHeader(0, BinlogEventType.Query, 1, 0, 0, 0), 1, 0, "shop", sql);
}
