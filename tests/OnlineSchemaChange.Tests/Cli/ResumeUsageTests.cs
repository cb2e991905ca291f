using System.Net;
using System.Net.Sockets;
using OnlineSchemaChange.Cli;

namespace OnlineSchemaChange.Tests.Cli;

/// <summary>--resume and --cleanup-on-abort on the command line, without a server.</summary>
public sealed class ResumeUsageTests
{
    [Fact]
    public async Task Resume_without_execute_is_refused_before_connecting()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await OscApp.RunAsync(["alter", $"mysql://u@127.0.0.1:{port}/db", "--table", "t", "--alter", "MODIFY k BIGINT", "--resume"],
            stdout, stderr, interactive: false, CancellationToken.None);

        Assert.Equal(1, code);
        Assert.Contains("--resume continues an interrupted migration", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("Add --execute", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_lists_resume_and_cleanup_on_abort()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await OscApp.RunAsync(["alter", "--help"], stdout, stderr, interactive: false, CancellationToken.None);

        Assert.Equal(0, code);
        Assert.Contains("--resume", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("--cleanup-on-abort", stdout.ToString(), StringComparison.Ordinal);
    }
}
