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
        using var flag = new FlagFile("interrupted");
        using var cancel = new CancellationTokenSource();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Task<int> run = OscApp.RunAsync(["alter", uri, "--table", "t", "--alter", alter, "--execute", "--throttle-flag-file", flag.Path], stdout, stderr, false, cancel.Token);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await checkpointRows() < 0)
        {
            Assert.True(DateTime.UtcNow < deadline && !run.IsCompleted, $"no checkpoint was written: {stderr}");
            await Task.Delay(50);
        }

        await cancel.CancelAsync();
        Assert.Equal(130, await run);
    }

    /// <summary>
    /// Runs `osc alter --execute` as a process with the copy held by a throttle flag, sends it <paramref name="signal"/>
    /// (INT or TERM) once <paramref name="checkpointRows"/> shows a checkpoint, and returns how it ended.
    /// </summary>
    public static async Task<(int ExitCode, string Stderr)> SignalWhileCopyingAsync(string uri, string alter, string signal, Func<Task<long>> checkpointRows,
        params string[] extraArguments)
    {
        ArgumentNullException.ThrowIfNull(checkpointRows);
        using var flag = new FlagFile("interrupted");
        await using var osc = OscProcess.Start(uri, ["--table", "t", "--alter", alter, "--execute", "--throttle-flag-file", flag.Path, .. extraArguments]);
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

    /// <summary>
    /// Runs `osc alter --execute` as a process and kills it (-9) mid-copy, however fast the machine copies: the
    /// throttle flag holds the copy before its first chunk; then <see cref="KilledRunProbe.HoldKeyAsync"/> keeps a key
    /// of the shadow locked by an open transaction, so the chunk that reaches it waits while the chunks before it
    /// finish. Killed once a checkpoint (every two seconds) has its watermark past 20,000 and that chunk waits; with
    /// several workers, once it also records every chunk after the held one as copied.
    /// <paramref name="whileRunning"/> runs first, with the copy held. Returns the waiting chunk's session, which
    /// outlives the process.
    /// </summary>
    public static async Task<string> KillWithAChunkWaitingAsync(string uri, string alter, string workers, KilledRunProbe probe,
        Func<OscProcess, Task>? whileRunning = null, params string[] extraArguments)
    {
        ArgumentNullException.ThrowIfNull(probe);
        using var flag = new FlagFile("interrupted");
        await using var osc = OscProcess.Start(uri, ["--table", "t", "--alter", alter, "--execute", "--workers", workers, "--chunk-time-millis", "50",
            "--throttle-flag-file", flag.Path, .. extraArguments]);
        // The first checkpoint is saved once the shadow has its new definition, just before the copy.
        await WaitForAsync(async () => await probe.CheckpointRowsAsync() >= 0, osc, "the first checkpoint");
        if (whileRunning is not null)
        {
            await whileRunning(osc);
        }

        await probe.HoldKeyAsync();
        flag.Lift();
        // With several workers the others copy on past the held key to the end of the table, and a checkpoint
        // records those chunks as copied beyond its watermark.
        await WaitForAsync(async () => await probe.CheckpointWatermarkAsync() >= 20_000 && await probe.WaitingChunkAsync() != ""
                && (workers == "1" || await probe.CheckpointCopiedToTheEndAsync()),
            osc, "a checkpoint with its watermark past 20,000 (and with several workers, the rest copied) and the chunk waiting on the held key");
        string waiting = await probe.WaitingChunkAsync();
        osc.Kill();
        return waiting;
    }

    /// <summary>Waits until <paramref name="session"/> has left the server, or <paramref name="run"/> ended without it leaving.</summary>
    public static async Task WaitUntilGoneAsync(KilledRunProbe probe, string session, Task run)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(run);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await probe.SessionPresentAsync(session) && !run.IsCompleted)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the killed run's chunk (session {session}) is still there a minute later");
            await Task.Delay(20);
        }
    }

    /// <summary>Polls <paramref name="condition"/> for up to two minutes; fails at once if <paramref name="osc"/> exits first.</summary>
    public static async Task WaitForAsync(Func<Task<bool>> condition, OscProcess osc, string what)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(osc);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!await condition())
        {
            if (osc.HasExited)
            {
                Assert.Fail($"osc exited before {what}: {osc.ExitReport()}");
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }
}

/// <summary>What <see cref="InterruptedRun.KillWithAChunkWaitingAsync"/> asks of the engine under test.</summary>
/// <param name="CheckpointRowsAsync">Rows the last checkpoint records (negative: none yet).</param>
/// <param name="CheckpointWatermarkAsync">The last checkpoint's watermark (a single integer key).</param>
/// <param name="HoldKeyAsync">Inserts a row into the shadow in a transaction left open.</param>
/// <param name="WaitingChunkAsync">The session of a copy chunk waiting on a lock in the shadow, or "".</param>
/// <param name="SessionPresentAsync">Whether a session is still on the server.</param>
/// <param name="CheckpointCopiedToTheEndAsync">Whether the last checkpoint's ranges copied beyond its watermark reach the end of the table.</param>
internal sealed record KilledRunProbe(
    Func<Task<long>> CheckpointRowsAsync,
    Func<Task<long>> CheckpointWatermarkAsync,
    Func<Task> HoldKeyAsync,
    Func<Task<string>> WaitingChunkAsync,
    Func<string, Task<bool>> SessionPresentAsync,
    Func<Task<bool>> CheckpointCopiedToTheEndAsync);
