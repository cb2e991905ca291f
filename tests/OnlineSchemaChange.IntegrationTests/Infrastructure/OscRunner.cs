using System.Text.Json;
using OnlineSchemaChange.Cli;

namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>Runs the `osc` command line in-process, as a script would, capturing its exit code and output.</summary>
public static class OscRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public JsonElement Json => JsonDocument.Parse(Stdout).RootElement;
    }

    public static async Task<Result> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await OscApp.RunAsync(args, stdout, stderr, interactive: false, CancellationToken.None);
        return new Result(code, stdout.ToString(), stderr.ToString());
    }
}
