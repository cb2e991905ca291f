using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

public sealed class ThrottlerTests
{
    [Fact]
    public async Task A_flag_file_holds_the_copy_until_it_is_removed()
    {
        string flag = Path.Combine(Path.GetTempPath(), $"osc-throttle-{Guid.NewGuid():N}");
        await using var throttler = new Throttler([new FlagFileSignal(flag)], TimeSpan.FromMilliseconds(20), TimeProvider.System);
        await throttler.CheckAsync(CancellationToken.None);
        Assert.True(throttler.WaitUntilOpenAsync(CancellationToken.None).IsCompleted);

        await File.WriteAllTextAsync(flag, "");
        try
        {
            await throttler.CheckAsync(CancellationToken.None);
            Task open = throttler.WaitUntilOpenAsync(CancellationToken.None);
            Assert.False(open.IsCompleted);
            Assert.Contains(flag, throttler.Reason, StringComparison.Ordinal);

            throttler.Start();
            File.Delete(flag);
            await open.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Null(throttler.Reason);
        }
        finally
        {
            File.Delete(flag);
        }
    }

    [Fact]
    public async Task A_threshold_names_the_value_and_the_limit()
    {
        double lag = 2500;
        await using var throttler = new Throttler([new ThresholdSignal("replica lag", 1500, _ => ValueTask.FromResult(lag), " ms")], TimeSpan.FromSeconds(1), TimeProvider.System);

        await throttler.CheckAsync(CancellationToken.None);
        Assert.Equal("replica lag is 2500 ms, above 1500 ms", throttler.Reason);

        lag = 100;
        await throttler.CheckAsync(CancellationToken.None);
        Assert.False(throttler.IsThrottled);
    }

    [Fact]
    public async Task A_signal_that_cannot_be_measured_throttles()
    {
        await using var throttler = new Throttler(
            [new ThresholdSignal("replica lag", 1500, _ => throw new InvalidOperationException("replica unreachable"))], TimeSpan.FromSeconds(1), TimeProvider.System);

        await throttler.CheckAsync(CancellationToken.None);

        Assert.Contains("replica unreachable", throttler.Reason, StringComparison.Ordinal);
    }
}
