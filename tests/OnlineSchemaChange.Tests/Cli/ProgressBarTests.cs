using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core.Migration;

namespace OnlineSchemaChange.Tests.Cli;

public sealed class ProgressBarTests
{
    [Fact]
    public void Shows_the_share_copied_the_rate_since_the_last_report_and_an_eta()
    {
        var bar = new ProgressBar(width: 10);
        string first = bar.Format(new OnlineAlterProgress("copying", 100_000, 1_000_000, 5, null, TimeSpan.FromSeconds(10)));
        string second = bar.Format(new OnlineAlterProgress("copying", 300_000, 1_000_000, 50, null, TimeSpan.FromSeconds(12)));

        Assert.StartsWith("[#.........]  10% 100,000/~1,000,000 rows", first, StringComparison.Ordinal);
        Assert.DoesNotContain("rows/s", first, StringComparison.Ordinal);
        Assert.StartsWith("[###.......]  30% 300,000/~1,000,000 rows, 100,000 rows/s, ETA 7s", second, StringComparison.Ordinal);
        Assert.Contains("50 changes replayed, backlog 0, copying, 12s elapsed", second, StringComparison.Ordinal);
        Assert.DoesNotContain("replica lag", second, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1250.0, "1,234 changes replayed, backlog 87, replica lag 1.3s, copying")]
    [InlineData(double.PositiveInfinity, "1,234 changes replayed, backlog 87, replica lag unknown, copying")]
    public void Shows_the_replays_backlog_and_the_largest_replica_lag(double lagMillis, string expected)
    {
        string line = new ProgressBar().Format(new OnlineAlterProgress("copying", 10, 100, 1234, null, TimeSpan.FromSeconds(3))
        {
            Backlog = 87,
            ReplicaLagMillis = lagMillis,
        });

        Assert.Contains(expected, line, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_the_throttle_reason_and_leaves_out_the_eta_after_the_copy()
    {
        var bar = new ProgressBar(width: 4);
        bar.Format(new OnlineAlterProgress("copying", 900, 1000, 0, null, TimeSpan.FromSeconds(1)));
        string line = bar.Format(new OnlineAlterProgress("verifying", 1000, 1000, 0, "replica lag 2 s", TimeSpan.FromSeconds(65)));

        Assert.StartsWith("[####] 100%", line, StringComparison.Ordinal);
        Assert.DoesNotContain("ETA", line, StringComparison.Ordinal);
        Assert.EndsWith("verifying, 1m05s elapsed, paused: replica lag 2 s", line, StringComparison.Ordinal);
    }
}
