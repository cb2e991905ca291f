using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Cli.Control;

/// <summary>
/// A Unix socket on which a running migration takes one command per connection (<see cref="ControlCommands"/>), as
/// gh-ost's --serve-socket-file does: `echo status | nc -U /tmp/osc...sock`. Only its owner may connect (mode 0600).
/// The file is removed when the run ends however it ends; one left by a killed run is found dead and replaced.
/// </summary>
internal sealed class ControlSocket : IAsyncDisposable
{
    private const int MaxLine = 4096;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    private ControlSocket(string path, Socket listener, Func<string, CancellationToken, Task<string>> execute)
    {
        Path = path;
        _listener = listener;
        _accepting = AcceptAsync(execute, _stop.Token);
    }

    public string Path { get; }

    /// <summary>
    /// The default path: one per server and table, in the temporary directory, so that runs against other servers
    /// or tables from the same host never meet. Shortened to a digest where the name would pass the 107-byte limit
    /// of a Unix socket's path.
    /// </summary>
    public static string DefaultPath(ConnectionTarget target, TableName table)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(table);
        string name = $"osc.{target.Host}-{target.Port}.{table.Schema ?? target.Database}.{table.Name}";
        string safe = new(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_').ToArray());
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), safe + ".sock");
        if (Encoding.UTF8.GetByteCount(path) <= 100 && safe == name)
        {
            return path;
        }

        string digest = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)))[..16];
        return System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"osc.{digest}.sock");
    }

    /// <summary>Listens on <paramref name="path"/>; refuses when another live process listens there.</summary>
    public static async Task<ControlSocket> StartAsync(string path, Func<string, CancellationToken, Task<string>> execute, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(execute);
        if (Encoding.UTF8.GetByteCount(path) > 107)
        {
            throw new OscException($"--control-socket {path} is longer than a Unix socket's path may be (107 bytes).", "Give a shorter path, or --control-socket none.");
        }

        if (File.Exists(path))
        {
            if (await IsLiveAsync(path, cancellationToken))
            {
                throw new OscException($"Another process listens on the control socket {path} (another osc run on the same server and table?).",
                    "Check with `echo status | nc -U " + path + "`; to run anyway, give this run another --control-socket path or --control-socket none.");
            }

            // Left by a run that was killed: nothing answers on it. Only what looks like one of ours is removed, so a
            // mistyped path never costs the operator a file.
            if (!path.EndsWith(".sock", StringComparison.Ordinal) || new FileInfo(path).Length != 0)
            {
                throw new OscException($"--control-socket {path} exists and is not a socket osc left.", "Give a path that does not exist (ending in .sock), or --control-socket none.");
            }

            File.Delete(path);
        }

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            if (!OperatingSystem.IsWindows())
            {
                // Connecting takes write permission on the file: only the owner may steer the migration.
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            listener.Listen(8);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            throw new OscException($"Cannot listen on the control socket {path}: {e.Message}", "Give a path in a writable directory with --control-socket, or --control-socket none.", e);
        }

        return new ControlSocket(path, listener, execute);
    }

    /// <summary>
    /// Removes a socket file a killed run left at <paramref name="path"/> (`osc cleanup`); true when there was one.
    /// A live socket, or a file that is not one of ours, is left alone.
    /// </summary>
    public static async Task<bool> RemoveIfDeadAsync(string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path) || !path.EndsWith(".sock", StringComparison.Ordinal) || new FileInfo(path).Length != 0 || await IsLiveAsync(path, cancellationToken))
        {
            return false;
        }

        File.Delete(path);
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _accepting.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
            // Reported by nothing: a dead socket file is replaced by the next run.
        }
    }

    private static async Task<bool> IsLiveAsync(string path, CancellationToken cancellationToken)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await probe.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private async Task AcceptAsync(Func<string, CancellationToken, Task<string>> execute, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(cancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            // One at a time: commands are rare, and an answer never waits on the database for long.
            await ServeAsync(client, execute, cancellationToken);
        }
    }

    private static async Task ServeAsync(Socket client, Func<string, CancellationToken, Task<string>> execute, CancellationToken cancellationToken)
    {
        using (client)
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            // A client that connects and says nothing must not hold the socket from the next one.
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            try
            {
                await using var stream = new NetworkStream(client, ownsSocket: false);
                string? line = await ReadLineAsync(stream, timeout.Token);
                if (line is null)
                {
                    return;
                }

                string answer;
                try
                {
                    answer = await execute(line, timeout.Token);
                }
                catch (Exception e) when (e is not (OperationCanceledException or OutOfMemoryException))
                {
                    // A command must never take the socket down with it: the operator may still need abort.
                    answer = $"error: {e.Message}";
                }

                await stream.WriteAsync(Encoding.UTF8.GetBytes(answer.TrimEnd('\n') + "\n"), timeout.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
            {
                // The client went away or took too long; the migration goes on.
            }
        }
    }

    private static async Task<string?> ReadLineAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxLine];
        int length = 0;
        while (length < buffer.Length)
        {
            int read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken);
            if (read == 0)
            {
                break;
            }

            int newline = Array.IndexOf(buffer, (byte)'\n', length, read);
            length += read;
            if (newline >= 0)
            {
                return Encoding.UTF8.GetString(buffer, 0, newline);
            }
        }

        return length == 0 ? null : Encoding.UTF8.GetString(buffer, 0, length);
    }
}
