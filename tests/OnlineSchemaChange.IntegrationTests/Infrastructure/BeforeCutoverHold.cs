namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>
/// A hooks directory (for --hooks-path) whose before-cut-over hook stops osc just before its swap until the test
/// releases it: the test sets the scene for the swap at a known moment, whatever the machine's speed.
/// </summary>
internal sealed class BeforeCutoverHold : IDisposable
{
    private readonly string _ready;
    private readonly string _go;

    public BeforeCutoverHold()
    {
        Path = Directory.CreateTempSubdirectory("osc-hooks-").FullName;
        _ready = System.IO.Path.Combine(Path, "ready");
        _go = System.IO.Path.Combine(Path, "go");
        string hook = System.IO.Path.Combine(Path, "osc-on-before-cut-over-hold");
        File.WriteAllText(hook, $"#!/bin/sh\ntouch '{_ready}'\nwhile [ ! -f '{_go}' ]; do sleep 0.05; done\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(hook, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>The directory to give --hooks-path.</summary>
    public string Path { get; }

    /// <summary>Waits until osc has reached the hook, failing if it ends first.</summary>
    public Task WaitUntilHeldAsync(OscProcess osc) => InterruptedRun.WaitForAsync(() => Task.FromResult(File.Exists(_ready)), osc, "the before-cut-over hook");

    /// <summary>Lets osc go on to its swap.</summary>
    public void Release() => File.WriteAllText(_go, "");

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
