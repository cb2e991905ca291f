using System.Diagnostics;

namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// A small bash process that owns one server and its directory, so that a crashed or killed test run leaves nothing
/// behind. It starts the server in the background, then once a second checks that the owner process is alive, not
/// a zombie, and not another process that reused its pid. It stops the server (the given signal, then SIGKILL after a minute) and deletes the directory when
/// the owner is gone, when its stdin reaches end of file (the owner's end of the pipe closes when the owner dies,
/// however it dies), or when it reads "stop" (our own disposal). Without a server command it only guards the directory.
/// It runs in its own session so a Ctrl-C aimed at the test runner does not kill it before it has cleaned up. It writes
/// its pid and start time to watchdog.pid in the directory: a test host killed with its whole process tree (a hang
/// timeout) takes the watchdog with it, and <see cref="LeftoverServers"/> then recognises the directory as abandoned.
/// </summary>
internal sealed class Watchdog : IAsyncDisposable
{
    // Arguments: owner pid, directory, log file, stop signal, then the server command (optional).
    // Stdout protocol: "started <pid>" once the server runs, "exited <code>" if it ends by itself, "stopping <why>" when
    // the watchdog stops it.
    private const string Script = """
        unset OSC_WATCHDOG_SCRIPT
        set -u
        exec 2>/dev/null
        owner=$1 dir=$2 log=$3 signal=$4; shift 4
        server=
        alive() { local s; s=$(< "/proc/$1/stat") || return 1; s=${s##*) }; [[ ${s%% *} != Z ]]; } 2>/dev/null
        # Field 22 of /proc/<pid>/stat, the start time: tells the owner from a later process that reuses its pid.
        started() { local s; s=$(< "/proc/$1/stat") || return 1; s=${s##*) }; set -- $s; echo "${20}"; } 2>/dev/null
        owner_start=$(started "$owner")
        owner_alive() { alive "$owner" && [[ $(started "$owner") == "$owner_start" ]]; }
        finish() {
          trap '' TERM INT HUP
          echo "stopping $1"
          if [[ -n $server ]] && alive "$server"; then
            kill -s "$signal" "$server" 2>/dev/null
            for ((i = 0; i < 600; i++)); do alive "$server" || break; sleep 0.1; done
            alive "$server" && kill -s KILL "$server" 2>/dev/null
            wait "$server" 2>/dev/null
          fi
          rm -rf -- "$dir"
          exit 0
        }
        trap 'finish "on a signal"' TERM INT HUP
        owner_alive || finish "since its owner process $owner is gone"
        # Names the guard, so a later run can tell a directory whose watchdog was killed (see LeftoverServers).
        echo "$$ $(started $$)" >"$dir/watchdog.pid"
        if (($#)); then
          "$@" </dev/null >>"$log" 2>&1 &
          server=$!
        fi
        # Ignored only now, so the server keeps the default: a status line to a dead reader must not kill us.
        trap '' PIPE
        [[ -n $server ]] && echo "started $server"
        while :; do
          if read -r -t 1 line; then
            [[ $line == stop ]] && finish "as asked"
            [[ $line == kill ]] && signal=KILL && finish "at once, as asked"
          elif (($? <= 128)); then
            finish "since its owner closed the pipe"
          fi
          owner_alive || finish "since its owner process $owner is gone"
          if [[ -n $server ]] && ! alive "$server"; then
            wait "$server"; echo "exited $?"; server=
          fi
        done
        """;

    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(90);

    private readonly Process process;
    private readonly TaskCompletionSource<int> started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<string> ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task reader;
    private readonly string directory;
    private string? stopReason;
    private int stopped;
    private int disposed;

    private Watchdog(Process process, string directory)
    {
        this.process = process;
        this.directory = directory;
        reader = ReadStatusAsync();
    }

    /// <summary>The server's pid once it runs.</summary>
    public Task<int> ServerStarted => started.Task;

    /// <summary>Completes, saying how, when the server ends on its own (e.g. a failed start) or the watchdog stops it.</summary>
    public Task<string> ServerEnded => ended.Task;

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
        // The script travels in the environment so that ps shows the server's command line, not forty lines of bash.
        IReadOnlyList<string> bash = ["bash", "-c", "eval \"$OSC_WATCHDOG_SCRIPT\"", "osc-watchdog", ownerProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), directory, logPath, stopSignal, .. server];
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

        info.Environment["OSC_WATCHDOG_SCRIPT"] = Script;
        var process = Process.Start(info) ?? throw new LocalServerException($"Could not start the watchdog for {directory}.");
        return new Watchdog(process, directory);
    }

    /// <summary>Stops the server and deletes the directory; safe to call more than once.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => EndAsync("stop", cancellationToken);

    /// <summary>
    /// Kills the server outright and deletes the directory: for a server that failed to start, since mariadbd asked to
    /// shut down while still starting can hang until killed.
    /// </summary>
    public Task KillAsync(CancellationToken cancellationToken = default) => EndAsync("kill", cancellationToken);

    private async Task EndAsync(string command, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref stopped, 1) == 0)
        {
            try
            {
                await process.StandardInput.WriteLineAsync(command.AsMemory(), cancellationToken);
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
        if (Interlocked.Exchange(ref disposed, 1) == 0)
        {
            await StopAsync();
            process.Dispose();
        }
    }

    private async Task ReadStatusAsync()
    {
        while (await process.StandardOutput.ReadLineAsync() is { } line)
        {
            var (kind, detail) = line.Split(' ', 2) is [var k, var d] ? (k, d) : (line, "");
            switch (kind)
            {
                case "started" when int.TryParse(detail, System.Globalization.CultureInfo.InvariantCulture, out var pid):
                    started.TrySetResult(pid);
                    break;
                case "exited":
                    ended.TrySetResult($"exited with code {detail}");
                    break;
                case "stopping":
                    stopReason = $"is being stopped by its watchdog {detail}";
                    ended.TrySetResult(stopReason);
                    break;
            }
        }

        // End of output: the watchdog itself has gone, so the server has too.
        started.TrySetException(new LocalServerException(
            $"the watchdog for {directory} ended before it started the server{(stopReason is null ? "" : $": the server {stopReason}")}."));
        ended.TrySetResult("is gone with its watchdog");
    }
}
