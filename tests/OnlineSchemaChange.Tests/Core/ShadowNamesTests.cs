using OnlineSchemaChange.Core.Migration;

namespace OnlineSchemaChange.Tests.Core;

public sealed class ShadowNamesTests
{
    [Fact]
    public void A_rebuilt_materialized_view_is_named_after_the_table_and_the_original_views_oid()
    {
        var names = new ShadowNames("orders", 63);

        Assert.Equal("orders_osc_mv16400", names.RebuiltView(16400));
        Assert.Equal("orders_osc_mvi16401", names.RebuiltView(16401, index: true));
    }

    [Fact]
    public void The_longest_table_name_is_cut_so_the_rebuilt_views_name_stays_within_the_limit_with_its_oid_whole()
    {
        string table = new('t', 55);
        var names = new ShadowNames(table, 63);

        string view = names.RebuiltView(uint.MaxValue);
        string index = names.RebuiltView(uint.MaxValue, index: true);

        Assert.Equal(63, view.Length);
        Assert.Equal(63, index.Length);
        Assert.EndsWith("_osc_mv4294967295", view, StringComparison.Ordinal);
        Assert.EndsWith("_osc_mvi4294967295", index, StringComparison.Ordinal);
        Assert.StartsWith(table[..46], view, StringComparison.Ordinal);
    }
}
