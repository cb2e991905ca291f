using System.Net.Sockets;
using OnlineSchemaChange.Cli.Commands;
using OnlineSchemaChange.Cli.Output;

namespace OnlineSchemaChange.Tests.Cli;

public sealed class CommandGuardTests
{
    [Fact]
    public async Task A_lost_server_connection_is_explained_not_reported_as_a_bug()
    {
        (int code, string stderr) = await RunAsync(() => throw new IOException("Exception while reading from stream", new SocketException((int)SocketError.ConnectionReset)));

        Assert.Equal(1, code);
        Assert.Contains("Lost the connection to the server: Exception while reading from stream.", stderr, StringComparison.Ordinal);
        Assert.Contains("--resume", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("bug", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Anything_else_unexpected_is_still_reported_as_a_bug_with_its_details()
    {
        (int code, string stderr) = await RunAsync(() => throw new InvalidOperationException("a state that cannot happen"));

        Assert.Equal(1, code);
        Assert.Contains("Unexpected failure: a state that cannot happen", stderr, StringComparison.Ordinal);
        Assert.Contains("This is a bug", stderr, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Stderr)> RunAsync(Func<Task<int>> body)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CommandGuard.RunAsync(new OscConsole(stdout, stderr, interactive: false), asJson: false, body, CancellationToken.None);
        return (code, stderr.ToString());
    }
}
