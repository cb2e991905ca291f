using OnlineSchemaChange.Cli;

namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>A migration interrupted the way an operator's Ctrl-C interrupts it, with its work checkpointed.</summary>
internal static class InterruptedRun
{
    /// <summary>
    /// Runs `osc alter --execute` in-process with the copy held by a throttle flag, and cancels it (Ctrl-C) once
    /// <paramref name="checkpointRows"/> shows a checkpoint (a negative count: none yet). The run must exit with 130.
    /// </summary>
    public static async Task StopWhileCopyingAsync(string uri, string alter, Func<Task<long>> checkpointRows)
    {
        ArgumentNullException.ThrowIfNull(checkpointRows);
        string flag = Path.Combine(Path.GetTempPath(), $"osc-interrupted-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(flag, "");
        try
        {
            using var cancel = new CancellationTokenSource();
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            Task<int> run = OscApp.RunAsync(["alter", uri, "--table", "t", "--alter", alter, "--execute", "--throttle-flag-file", flag], stdout, stderr, false, cancel.Token);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (await checkpointRows() < 0)
            {
                Assert.True(DateTime.UtcNow < deadline && !run.IsCompleted, $"no checkpoint was written: {stderr}");
                await Task.Delay(50);
            }

            await cancel.CancelAsync();
            Assert.Equal(130, await run);
        }
        finally
        {
            File.Delete(flag);
        }
    }

    /// <summary>
    /// Runs `osc alter --execute` as a process with the copy held by a throttle flag, sends it <paramref name="signal"/>
    /// (INT or TERM) once <paramref name="checkpointRows"/> shows a checkpoint, and returns how it ended.
    /// </summary>
    public static async Task<(int ExitCode, string Stderr)> SignalWhileCopyingAsync(string uri, string alter, string signal, Func<Task<long>> checkpointRows,
        params string[] extraArguments)
    {
        ArgumentNullException.ThrowIfNull(checkpointRows);
        string flag = Path.Combine(Path.GetTempPath(), $"osc-interrupted-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(flag, "");
        try
        {
            await using var osc = OscProcess.Start(uri, ["--table", "t", "--alter", alter, "--execute", "--throttle-flag-file", flag, .. extraArguments]);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (await checkpointRows() < 0)
            {
                Assert.True(DateTime.UtcNow < deadline && !osc.HasExited, $"no checkpoint was written: {osc.Stderr}");
                await Task.Delay(50);
            }

            osc.Signal(signal);
            int exitCode = await osc.WaitForExitAsync(TimeSpan.FromSeconds(60));
            return (exitCode, osc.Stderr);
        }
        finally
        {
            File.Delete(flag);
        }
    }
}
