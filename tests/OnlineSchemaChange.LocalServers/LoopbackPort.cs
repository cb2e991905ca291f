using System.Net;
using System.Net.Sockets;

namespace OnlineSchemaChange.LocalServers;

/// <summary>Free TCP ports on 127.0.0.1, found by letting the kernel pick one.</summary>
internal static class LoopbackPort
{
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
