using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using OnlineSchemaChange.Cli;

namespace OnlineSchemaChange.Tests.Cli;

/// <summary>Command-line behaviour that needs no server: usage errors and unreachable servers.</summary>
public sealed class CliUsageTests
{
    private static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await OscApp.RunAsync(args, stdout, stderr, interactive: false, CancellationToken.None);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Theory]
    [InlineData("mysql")]
    [InlineData("postgres")]
    public async Task An_unreachable_server_is_named_with_a_fix_and_exit_code_1(string scheme)
    {
        int port = ClosedPort();
        var (code, _, err) = await RunAsync("plan", $"{scheme}://u@127.0.0.1:{port}/db", "--table", "t", "--alter", "ADD COLUMN c INT");

        Assert.Equal(1, code);
        Assert.Contains($"127.0.0.1:{port}", err, StringComparison.Ordinal);
        Assert.Contains("Cannot connect", err, StringComparison.Ordinal);
        Assert.Contains("fix:", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_alter_text_is_refused_before_connecting()
    {
        // The port is closed: a connection attempt would produce a different error.
        var (code, stdout, err) = await RunAsync("plan", $"mysql://u@127.0.0.1:{ClosedPort()}/db", "--table", "t", "--alter", "ADD c INT; DROP TABLE t", "--json");

        Assert.Equal(1, code);
        Assert.Contains("more than one statement", err, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(stdout);
        Assert.Contains("more than one statement", json.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--workers", "0", "--workers must be at least 1, not 0.")]
    [InlineData("--chunk-time-millis", "-5", "--chunk-time-millis must be at least 1, not -5.")]
    [InlineData("--max-lag-millis", "0", "--max-lag-millis must be at least 1, not 0.")]
    [InlineData("--max-write-latency-millis", "-1", "--max-write-latency-millis must be at least 0, not -1.")]
    [InlineData("--cut-over-lock-timeout-seconds", "0", "--cut-over-lock-timeout-seconds must be at least 1, not 0.")]
    [InlineData("--cut-over-attempts", "0", "--cut-over-attempts must be at least 1, not 0.")]
    public async Task An_option_out_of_range_is_refused_even_in_a_dry_run_before_connecting(string option, string value, string expected)
    {
        var (code, _, err) = await RunAsync("alter", $"mysql://u@127.0.0.1:{ClosedPort()}/db", "--table", "t", "--alter", "ADD c INT", option, value);

        Assert.Equal(1, code);
        Assert.Contains(expected, err, StringComparison.Ordinal);
        Assert.DoesNotContain("Cannot connect", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_server_says_how_to_name_one()
    {
        var (code, _, err) = await RunAsync("plan", "--table", "t", "--alter", "ADD c INT");
        Assert.Equal(1, code);
        Assert.Contains("No server given", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_required_option_is_a_usage_error()
    {
        var (code, _, err) = await RunAsync("plan", "mysql://u@h/db", "--table", "t");
        Assert.NotEqual(0, code);
        Assert.Contains("--alter", err, StringComparison.Ordinal);
    }
}
