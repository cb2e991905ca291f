using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class RowKeyComparerTests
{
    [Fact]
    public void Orders_keys_as_an_index_would()
    {
        RowKey[] keys =
        [
            new(10L, "b"), new(2, "z"), new(10L, "a"), new(null, "x"), new(2UL, "a"),
        ];

        var ordered = keys.Order(RowKeyComparer.Instance).Select(k => k.ToString()).ToList();

        Assert.Equal(["(NULL, x)", "(2, a)", "(2, z)", "(10, a)", "(10, b)"], ordered);
    }

    [Fact]
    public void Byte_keys_order_by_their_bytes() =>
        Assert.True(RowKeyComparer.Instance.Compare(new RowKey(new byte[] { 1, 255 }), new RowKey(new byte[] { 2, 0 })) < 0);
}
