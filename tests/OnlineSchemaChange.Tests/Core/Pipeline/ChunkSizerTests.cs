using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class ChunkSizerTests
{
    [Fact]
    public void Converges_on_the_size_that_takes_the_target_time()
    {
        var sizer = new ChunkSizer(TimeSpan.FromMilliseconds(500), initialRows: 1000);
        const double serverRowsPerSecond = 40_000;
        for (int i = 0; i < 20; i++)
        {
            int rows = sizer.NextRows;
            sizer.Record(rows, TimeSpan.FromSeconds(rows / serverRowsPerSecond));
        }

        Assert.InRange(sizer.NextRows, 19_000, 21_000);
    }

    [Fact]
    public void Never_more_than_doubles_or_halves_at_once()
    {
        var sizer = new ChunkSizer(TimeSpan.FromMilliseconds(500), initialRows: 1000);
        sizer.Record(1000, TimeSpan.FromMilliseconds(1));
        Assert.Equal(2000, sizer.NextRows);

        sizer = new ChunkSizer(TimeSpan.FromMilliseconds(500), initialRows: 1000);
        sizer.Record(1000, TimeSpan.FromSeconds(100));
        Assert.Equal(500, sizer.NextRows);
    }

    [Fact]
    public void Stays_within_its_bounds()
    {
        var sizer = new ChunkSizer(TimeSpan.FromMilliseconds(500), initialRows: 200, minRows: 100, maxRows: 300);
        for (int i = 0; i < 10; i++)
        {
            sizer.Record(sizer.NextRows, TimeSpan.FromSeconds(60));
        }

        Assert.Equal(100, sizer.NextRows);
        for (int i = 0; i < 10; i++)
        {
            sizer.Record(sizer.NextRows, TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal(300, sizer.NextRows);
    }
}
