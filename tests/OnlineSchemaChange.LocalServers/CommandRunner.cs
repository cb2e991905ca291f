using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace OnlineSchemaChange.LocalServers;

/// <summary>Runs a short-lived command (initdb, pg_basebackup, cp) to completion and fails with its output.</summary>
internal static class CommandRunner
{
    public static async Task<string> RunAsync(
        IReadOnlyList<string> command,
        IReadOnlyDictionary<string, string>? environment = null,
        CancellationToken cancellationToken = default)
    {
        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in command.Skip(1))
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            throw new LocalServerException(
                $"Could not run '{string.Join(' ', command)}': {e.Message}. Run tools/setup to install what the tests need.", e);
        }

        process.StandardInput.Close();
        var output = new StringBuilder();
        var stdout = PumpAsync(process.StandardOutput, output);
        var stderr = PumpAsync(process.StandardError, output);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Waited for, so the caller can delete the directory the command was writing.
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw;
        }

        await Task.WhenAll(stdout, stderr);
        if (process.ExitCode != 0)
        {
            throw new LocalServerException(
                $"'{string.Join(' ', command)}' failed with exit code {process.ExitCode}:{Environment.NewLine}{output}");
        }

        return output.ToString();
    }

    private static async Task PumpAsync(StreamReader reader, StringBuilder sink)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            lock (sink)
            {
                sink.AppendLine(line);
            }
        }
    }
}
