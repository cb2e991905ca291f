using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.Tests.MySql;

public sealed class StreamServerIdTests
{
    [Fact]
    public void Picks_in_osc_s_range_and_never_an_id_in_use()
    {
        const uint Free = StreamServerId.First + 1234;
        var taken = new HashSet<uint>();
        for (uint id = StreamServerId.First; id <= StreamServerId.Last; id++)
        {
            if (id != Free)
            {
                taken.Add(id);
            }
        }

        Assert.Equal(Free, StreamServerId.Pick(taken, new Random(7)));
    }

    [Fact]
    public void Two_picks_rarely_agree()
    {
        var random = new Random(11);
        var picks = Enumerable.Range(0, 20).Select(_ => StreamServerId.Pick(new HashSet<uint>(), random)).ToList();
        Assert.All(picks, p => Assert.InRange(p, StreamServerId.First, StreamServerId.Last));
        Assert.True(picks.Distinct().Count() >= 19, string.Join(", ", picks));
    }
}
