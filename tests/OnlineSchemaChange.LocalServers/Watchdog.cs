using System.Diagnostics;

namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// A small bash process that owns one server and its directory, so that a crashed or killed test run leaves nothing
/// behind. It starts the server in the background, then once a second checks that the owner process is alive and
/// not a zombie. It stops the server (the given signal, then SIGKILL after a minute) and deletes the directory when
/// the owner is gone, when its stdin reaches end of file (the owner's end of the pipe closes when the owner dies,
/// however it dies), or when it reads "stop" (our own disposal). Without a server command it only guards the directory.
/// It runs in its own session so a Ctrl-C aimed at the test runner does not kill it before it has cleaned up.
/// </summary>
internal sealed class Watchdog : IAsyncDisposable
{
    // Arguments: owner pid, directory, log file, stop signal, then the server command (optional).
    // Stdout protocol: "started <pid>" once the server runs, "exited <code>" if it ends by itself.
    private const string Script = """
        set -u
        owner=$1 dir=$2 log=$3 signal=$4; shift 4
        server=
        alive() { local s; s=$(< "/proc/$1/stat") || return 1; s=${s##*) }; [[ ${s%% *} != Z ]]; } 2>/dev/null
        finish() {
          trap '' TERM INT HUP
          if [[ -n $server ]] && alive "$server"; then
            kill -s "$signal" "$server" 2>/dev/null
            for ((i = 0; i < 600; i++)); do alive "$server" || break; sleep 0.1; done
            alive "$server" && kill -s KILL "$server" 2>/dev/null
            wait "$server" 2>/dev/null
          fi
          rm -rf -- "$dir"
          exit 0
        }
        trap finish TERM INT HUP
        if (($#)); then
          "$@" </dev/null >>"$log" 2>&1 &
          server=$!
        fi
        # Ignored only now, so the server keeps the default: a status line to a dead reader must not kill us.
        trap '' PIPE
        [[ -n $server ]] && echo "started $server"
        while :; do
          if read -r -t 1 line; then
            [[ $line == stop ]] && finish
          elif (($? <= 128)); then
            finish
          fi
          alive "$owner" || finish
          if [[ -n $server ]] && ! alive "$server"; then
            wait "$server"; echo "exited $?"; server=
          fi
        done
        """;

    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(90);

    private readonly Process process;
    private readonly TaskCompletionSource<int> started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task reader;
    private readonly string directory;
    private int stopped;

    private Watchdog(Process process, string directory)
    {
        this.process = process;
        this.directory = directory;
        reader = ReadStatusAsync();
    }

    /// <summary>The server's pid once it runs.</summary>
    public Task<int> ServerStarted => started.Task;

    /// <summary>Completes with the exit code if the server ends on its own (e.g. a failed start).</summary>
    public Task<int> ServerExited => exited.Task;

    /// <summary>The watchdog's own pid (the outermost process of its command line).</summary>
    public int ProcessId => process.Id;

    /// <summary>Starts <paramref name="server"/> under a watchdog; with an empty command, only guards the directory.</summary>
    public static Watchdog Start(
        int ownerProcessId,
        string directory,
        string logPath,
        string stopSignal,
        bool asDatabaseUser,
        IReadOnlyList<string> server)
    {
        IReadOnlyList<string> bash = ["bash", "-c", Script, "osc-watchdog", ownerProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), directory, logPath, stopSignal, .. server];
        IReadOnlyList<string> command = ["setsid", .. asDatabaseUser ? DatabaseUser.Wrap(bash) : bash];
        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = false,
            UseShellExecute = false,
        };
        foreach (var argument in command.Skip(1))
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new LocalServerException($"Could not start the watchdog for {directory}.");
        return new Watchdog(process, directory);
    }

    /// <summary>Stops the server and deletes the directory; safe to call more than once.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref stopped, 1) == 0)
        {
            try
            {
                await process.StandardInput.WriteLineAsync("stop".AsMemory(), cancellationToken);
                await process.StandardInput.FlushAsync(cancellationToken);
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // The watchdog is already gone: nothing to tell it.
            }
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StopTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }

        await reader;
        if (Directory.Exists(directory))
        {
            // Only reached when the watchdog could not clean up itself (killed above).
            Directory.Delete(directory, recursive: true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        process.Dispose();
    }

    private async Task ReadStatusAsync()
    {
        while (await process.StandardOutput.ReadLineAsync() is { } line)
        {
            var parts = line.Split(' ', 2);
            if (parts.Length == 2 && int.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out var value))
            {
                if (parts[0] == "started")
                {
                    started.TrySetResult(value);
                }
                else if (parts[0] == "exited")
                {
                    exited.TrySetResult(value);
                }
            }
        }

        // End of output: the watchdog itself has gone, so the server has too.
        started.TrySetException(new LocalServerException($"The watchdog for {directory} ended before the server started."));
        exited.TrySetResult(-1);
    }
}
