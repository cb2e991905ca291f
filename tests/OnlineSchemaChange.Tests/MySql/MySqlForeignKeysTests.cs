using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Migration;

namespace OnlineSchemaChange.Tests.MySql;

public sealed class MySqlForeignKeysTests
{
    private static readonly TableName Orders = new("shop", "orders");
    private static readonly TableName Customers = new("shop", "customers");
    private static readonly TableName Items = new("shop", "items");

    private static MySqlForeignKey ToCustomers(string onDelete = "RESTRICT", string onUpdate = "RESTRICT") =>
        new("fk_customer", Orders, ["customer_id"], Customers, ["id"], onDelete, onUpdate);

    private static MySqlForeignKey FromItems(string name = "fk_order") => new(name, Items, ["order_id"], Orders, ["id"], "CASCADE", "RESTRICT");

    private static ColumnMapping Mapping(params (string Source, string Target)[] renames)
    {
        string[] source = ["id", "customer_id", "parent_id", "note"];
        var targets = source.Select(c => renames.FirstOrDefault(r => r.Source == c).Target ?? c).Where(c => c != "-").ToList();
        return ColumnMapping.Build(source.Select(c => new TableColumn(c, false)).ToList(), targets.Select(c => new TableColumn(c, false)).ToList(),
            renames.Where(r => r.Target != "-").ToDictionary(r => r.Source, r => r.Target));
    }

    private static AlterStatement Alter(string text) => AlterStatement.Parse(text, Orders, SqlDialect.MySql);

    [Theory]
    [InlineData("fk_customer", "_fk_customer")]
    [InlineData("_fk_customer", "fk_customer")]
    [InlineData("orders_ibfk_1", "_orders_ibfk_1")]
    [InlineData("_", "__")]
    public void Rebuilt_names_toggle_a_leading_underscore_so_two_migrations_give_the_name_back(string name, string rebuilt)
    {
        Assert.Equal(rebuilt, MySqlForeignKeys.RebuiltName(name));
        Assert.Equal(name, MySqlForeignKeys.RebuiltName(MySqlForeignKeys.RebuiltName(name)));
    }

    [Fact]
    public void A_rebuilt_name_is_cut_to_64_characters()
    {
        string name = new('k', 64);
        Assert.Equal("_" + new string('k', 63), MySqlForeignKeys.RebuiltName(name));
    }

    [Fact]
    public void Keys_are_split_into_the_tables_own_and_the_referencing_ones_a_key_to_itself_being_its_own()
    {
        var self = new MySqlForeignKey("fk_parent", Orders, ["parent_id"], Orders, ["id"], "RESTRICT", "RESTRICT");
        var keys = new MySqlForeignKeys(Orders, [ToCustomers(), FromItems(), self], []);

        Assert.Equal(["fk_customer", "fk_parent"], keys.Own.Select(k => k.Name));
        Assert.Equal(["fk_order"], keys.Referencing.Select(k => k.Name));
    }

    [Fact]
    public void By_default_any_foreign_key_is_refused_naming_each_and_the_option()
    {
        var keys = new MySqlForeignKeys(Orders, [ToCustomers(), FromItems()], []);

        var e = Assert.Throws<OscException>(() => keys.Check(ForeignKeyMethod.Refuse, Alter("ADD COLUMN x INT")));

        Assert.Contains("has foreign keys", e.Message, StringComparison.Ordinal);
        Assert.Contains("shop.orders.fk_customer", e.Message, StringComparison.Ordinal);
        Assert.Contains("shop.items.fk_order", e.Message, StringComparison.Ordinal);
        Assert.Contains("--foreign-keys rebuild", e.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public void A_table_without_foreign_keys_passes_either_way()
    {
        MySqlForeignKeys.None(Orders).Check(ForeignKeyMethod.Refuse, Alter("ADD COLUMN x INT"));
        MySqlForeignKeys.None(Orders).Check(ForeignKeyMethod.Rebuild, Alter("ADD COLUMN x INT"));
    }

    [Theory]
    [InlineData("CASCADE", "RESTRICT")]
    [InlineData("SET NULL", "RESTRICT")]
    [InlineData("RESTRICT", "CASCADE")]
    [InlineData("NO ACTION", "SET DEFAULT")]
    public void A_child_with_a_cascading_rule_is_refused_because_its_cascaded_rows_are_not_in_the_binlog(string onDelete, string onUpdate)
    {
        var keys = new MySqlForeignKeys(Orders, [ToCustomers(onDelete, onUpdate)], []);

        var e = Assert.Throws<OscException>(() => keys.Check(ForeignKeyMethod.Rebuild, Alter("ADD COLUMN x INT")));

        Assert.Contains("binlog", e.Message, StringComparison.Ordinal);
        Assert.Contains("RESTRICT", e.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cascading_key_from_another_table_is_carried_over_it_changes_that_table_not_this_one()
    {
        var keys = new MySqlForeignKeys(Orders, [ToCustomers("NO ACTION"), FromItems()], []);

        keys.Check(ForeignKeyMethod.Rebuild, Alter("ADD COLUMN x INT"));
    }

    [Theory]
    [InlineData("ADD CONSTRAINT fk2 FOREIGN KEY (note) REFERENCES customers (id)")]
    [InlineData("DROP FOREIGN KEY fk_customer")]
    public void An_alter_that_changes_foreign_keys_itself_is_refused_with_the_native_way(string alter)
    {
        var keys = new MySqlForeignKeys(Orders, [ToCustomers()], []);

        var e = Assert.Throws<OscException>(() => keys.Check(ForeignKeyMethod.Rebuild, Alter(alter)));

        Assert.Contains("changes foreign keys", e.Message, StringComparison.Ordinal);
        Assert.Contains("foreign_key_checks = 0", e.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rebuilt_name_another_key_of_the_schema_has_is_refused()
    {
        var keys = new MySqlForeignKeys(Orders, [ToCustomers()], ["shop._FK_customer"]);

        var e = Assert.Throws<OscException>(() => keys.Check(ForeignKeyMethod.Rebuild, Alter("ADD COLUMN x INT")));

        Assert.Contains("_fk_customer", e.Message, StringComparison.Ordinal);
        new MySqlForeignKeys(Orders, [ToCustomers()], ["other._fk_customer"]).Check(ForeignKeyMethod.Rebuild, Alter("ADD COLUMN x INT"));
    }

    [Fact]
    public void The_shadow_gets_the_own_keys_under_rebuilt_names_with_renamed_columns_and_a_key_to_itself_on_itself()
    {
        var self = new MySqlForeignKey("fk_parent", Orders, ["parent_id"], Orders, ["id"], "NO ACTION", "RESTRICT");
        var keys = new MySqlForeignKeys(Orders, [ToCustomers(), self], []);

        string? sql = keys.AddToShadow(Orders with { Name = "orders_osc_new" }, Mapping(("customer_id", "client_id")));

        Assert.Equal("ALTER TABLE `shop`.`orders_osc_new` "
                     + "ADD CONSTRAINT `_fk_customer` FOREIGN KEY (`client_id`) REFERENCES `shop`.`customers` (`id`), "
                     + "ADD CONSTRAINT `_fk_parent` FOREIGN KEY (`parent_id`) REFERENCES `shop`.`orders_osc_new` (`id`) ON DELETE NO ACTION, "
                     + "ALGORITHM=INPLACE, LOCK=NONE", sql);
        Assert.Equal("ALTER TABLE `shop`.`orders` DROP FOREIGN KEY `fk_customer`, DROP FOREIGN KEY `fk_parent`, ALGORITHM=INPLACE, LOCK=NONE",
            keys.DropFromOriginal());
        Assert.Equal("ALTER TABLE `shop`.`orders` "
                     + "ADD CONSTRAINT `fk_customer` FOREIGN KEY (`customer_id`) REFERENCES `shop`.`customers` (`id`), "
                     + "ADD CONSTRAINT `fk_parent` FOREIGN KEY (`parent_id`) REFERENCES `shop`.`orders` (`id`) ON DELETE NO ACTION, "
                     + "ALGORITHM=INPLACE, LOCK=NONE", keys.RestoreOriginal());
    }

    [Fact]
    public void Referencing_tables_get_one_alter_each_that_moves_their_keys_to_the_new_table_keeping_the_rules()
    {
        var second = new MySqlForeignKey("fk_order2", Items, ["other_order_id"], Orders, ["id"], "RESTRICT", "CASCADE");
        var keys = new MySqlForeignKeys(Orders, [FromItems(), second], []);

        var rebuilt = keys.RebuildReferencing(Mapping(("id", "order_no")));

        var only = Assert.Single(rebuilt);
        Assert.Equal(Items, only.Child);
        Assert.Equal("ALTER TABLE `shop`.`items` "
                     + "DROP FOREIGN KEY `fk_order`, ADD CONSTRAINT `_fk_order` FOREIGN KEY (`order_id`) REFERENCES `shop`.`orders` (`order_no`) ON DELETE CASCADE, "
                     + "DROP FOREIGN KEY `fk_order2`, ADD CONSTRAINT `_fk_order2` FOREIGN KEY (`other_order_id`) REFERENCES `shop`.`orders` (`order_no`) ON UPDATE CASCADE, "
                     + "ALGORITHM=INPLACE, LOCK=NONE", only.Sql);
        Assert.Null(keys.AddToShadow(Orders with { Name = "orders_osc_new" }, Mapping()));
        Assert.Null(keys.ForCutover(Orders with { Name = "orders_osc_new" }, Mapping()));
    }

    [Fact]
    public void A_column_a_key_needs_dropped_by_the_alter_is_refused()
    {
        var keys = new MySqlForeignKeys(Orders, [ToCustomers()], []);

        var e = Assert.Throws<OscException>(() => keys.AddToShadow(Orders with { Name = "orders_osc_new" }, Mapping(("customer_id", "-"))));

        Assert.Contains("drops column customer_id", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Each_key_needs_an_index_starting_with_its_columns_on_the_new_table()
    {
        var keys = new MySqlForeignKeys(Orders, [ToCustomers(), FromItems()], []);
        IReadOnlyList<string>[] primaryOnly = [["id"]];
        IReadOnlyList<string>[] both = [["id"], ["customer_id", "note"]];
        IReadOnlyList<string>[] wrongOrder = [["id"], ["note", "customer_id"]];
        IReadOnlyList<string>[] noPrimary = [["customer_id"]];

        Assert.Null(keys.MissingIndex(Mapping(), both));
        Assert.Contains("(customer_id)", keys.MissingIndex(Mapping(), primaryOnly), StringComparison.Ordinal);
        Assert.Contains("(customer_id)", keys.MissingIndex(Mapping(), wrongOrder), StringComparison.Ordinal);
        Assert.Contains("references", keys.MissingIndex(Mapping(), noPrimary), StringComparison.Ordinal);
    }
}
