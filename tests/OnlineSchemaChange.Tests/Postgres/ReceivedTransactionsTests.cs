using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Tests.Postgres;

public sealed class ReceivedTransactionsTests
{
    [Fact]
    public void A_received_transaction_listed_as_running_is_invisible()
    {
        var received = new ReceivedTransactions();
        received.Add(100);
        Assert.True(received.AnyInvisibleTo([99, 100], xmax: 105));
        Assert.False(received.AnyInvisibleTo([99, 101], xmax: 105));
    }

    [Fact]
    public void A_received_transaction_at_or_past_xmax_is_invisible_though_not_listed()
    {
        // The newest transaction, committed to the WAL but not yet out of the running set, sets no xmax past itself.
        var received = new ReceivedTransactions();
        received.Add(100);
        Assert.True(received.AnyInvisibleTo([], xmax: 100));
        Assert.True(received.AnyInvisibleTo([], xmax: 99));
        Assert.False(received.AnyInvisibleTo([], xmax: 101));
    }

    [Fact]
    public void Ids_compare_across_the_32_bit_wrap()
    {
        var received = new ReceivedTransactions();
        received.Add(5); // issued just after the counter wrapped
        Assert.True(received.AnyInvisibleTo([], xmax: uint.MaxValue - 10));
        Assert.False(received.AnyInvisibleTo([], xmax: 6));
    }

    [Fact]
    public void Only_the_most_recent_ids_are_kept()
    {
        var received = new ReceivedTransactions(capacity: 2);
        received.Add(1);
        received.Add(2);
        received.Add(3);
        Assert.False(received.AnyInvisibleTo([1], xmax: 10));
        Assert.True(received.AnyInvisibleTo([2], xmax: 10));
    }
}
