using Docker.DotNet.Models;

namespace OnlineSchemaChange.LocalServers;

/// <summary>Docker publishes ports on every interface unless told otherwise; ours stay on loopback.</summary>
internal static class ContainerPorts
{
    public static void LoopbackOnly(CreateContainerParameters parameters)
    {
        foreach (var bindings in parameters.HostConfig?.PortBindings?.Values ?? [])
        {
            foreach (var binding in bindings)
            {
                binding.HostIP = "127.0.0.1";
            }
        }
    }
}
