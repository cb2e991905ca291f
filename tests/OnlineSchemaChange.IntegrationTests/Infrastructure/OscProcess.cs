using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>`osc alter` as a child process, as an operator runs it: killable with -9 and signalled like a terminal would.</summary>
public sealed class OscProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();

    private OscProcess(Process process)
    {
        _process = process;
    }

    public bool HasExited => _process.HasExited;

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public static OscProcess Start(string uri, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string arg in new[] { Path.Combine(AppContext.BaseDirectory, "osc.dll"), "alter", uri }.Concat(args))
        {
            start.ArgumentList.Add(arg);
        }

        var osc = new OscProcess(Process.Start(start)!);
        osc._process.ErrorDataReceived += (_, e) =>
        {
            lock (osc._stderr)
            {
                osc._stderr.AppendLine(e.Data);
            }
        };
        osc._process.OutputDataReceived += (_, _) => { };
        osc._process.BeginErrorReadLine();
        osc._process.BeginOutputReadLine();
        return osc;
    }

    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>
    /// For an assertion once the process has exited unexpectedly: its exit code and whole stderr (the wait lets the
    /// asynchronous reads reach the end of its output, where the error is).
    /// </summary>
    public string ExitReport()
    {
        _process.WaitForExit();
        return $"exit code {_process.ExitCode}; stderr: {Stderr}";
    }

    public void Signal(string name)
    {
        if (name == "INT" && InterruptIgnoredHere())
        {
            // Otherwise the run would wait for an exit that never comes, and fail as a hang.
            throw new InvalidOperationException(
                "SIGINT is ignored by the test process (a background job of a shell without job control starts so), and osc inherits " +
                "that: the runtime keeps an inherited SIG_IGN for SIGINT, as nohup expects, so osc would never see the signal. " +
                "Run the tests in the foreground, or from a shell with job control (set -m).");
        }

        using var kill = Process.Start("kill", ["-" + name, _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Whether SIGINT is ignored in this process (bit 2 of SigIgn in /proc/self/status), which a child inherits.</summary>
    private static bool InterruptIgnoredHere()
    {
        string? line = File.Exists("/proc/self/status") ? File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) : null;
        return line is not null && (ulong.Parse(line["SigIgn:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture) & 0x2) != 0;
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var limit = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            string stderr = Stderr;
            throw new TimeoutException($"osc did not exit within {timeout}; the end of its stderr: {stderr[Math.Max(0, stderr.Length - 4000)..]}");
        }

        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
