using System.Net.Sockets;

namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// Whether a Docker engine answers, decided fast: Testcontainers' own discovery can spend a long while on retries
/// when there is no engine, and most machines running these tests have none.
/// </summary>
internal static class DockerEngine
{
    private static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The first endpoint whose /_ping answers, or null. Only existing sockets and DOCKER_HOST are tried.</summary>
    public static async Task<Uri?> FindAsync(Func<string, string?> environment, CancellationToken cancellationToken)
    {
        foreach (var endpoint in Candidates(environment))
        {
            if (await AnswersAsync(endpoint, cancellationToken))
            {
                return endpoint;
            }
        }

        return null;
    }

    private static IEnumerable<Uri> Candidates(Func<string, string?> environment)
    {
        if (environment("DOCKER_HOST") is { Length: > 0 } host && Uri.TryCreate(host, UriKind.Absolute, out var configured))
        {
            yield return configured;
            yield break;
        }

        var home = environment("HOME") ?? "";
        var runtime = environment("XDG_RUNTIME_DIR") ?? "";
        string[] sockets =
        [
            "/var/run/docker.sock",
            Path.Combine(runtime, "docker.sock"),
            Path.Combine(home, ".docker", "run", "docker.sock"),
            Path.Combine(home, ".docker", "desktop", "docker.sock"),
        ];
        foreach (var socket in sockets.Where(s => Path.IsPathRooted(s) && File.Exists(s)))
        {
            yield return new Uri($"unix://{socket}");
        }
    }

    private static async Task<bool> AnswersAsync(Uri endpoint, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(PingTimeout);
        try
        {
            using var handler = new SocketsHttpHandler();
            Uri ping;
            if (endpoint.Scheme == "unix")
            {
                var socket = endpoint.LocalPath;
                handler.ConnectCallback = async (_, token) =>
                {
                    var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await client.ConnectAsync(new UnixDomainSocketEndPoint(socket), token);
                        return new NetworkStream(client, ownsSocket: true);
                    }
                    catch
                    {
                        client.Dispose();
                        throw;
                    }
                };
                ping = new Uri("http://docker/_ping");
            }
            else if (endpoint.Scheme is "tcp" or "http" or "https")
            {
                ping = new UriBuilder(endpoint) { Scheme = endpoint.Scheme == "https" ? "https" : "http", Path = "/_ping" }.Uri;
            }
            else
            {
                return false;
            }

            using var client = new HttpClient(handler);
            using var response = await client.GetAsync(ping, timeout.Token);

            // Any HTTP answer means an engine listens (a TLS-only one answers plain HTTP with 400).
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or IOException
                                      || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return false;
        }
    }
}
