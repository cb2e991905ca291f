using Docker.DotNet.Models;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;

namespace OnlineSchemaChange.LocalServers;

/// <summary>The Docker engine that answered, and what follows from where it is.</summary>
internal sealed class ContainerEngine(Uri endpoint)
{
    /// <summary>
    /// Docker publishes ports on every interface unless told otherwise; with an engine on this machine ours stay on
    /// loopback. A remote engine's ports are left as Docker publishes them, or we could not reach them at all.
    /// </summary>
    public Action<CreateContainerParameters> Publishing => endpoint.Scheme == "unix" || endpoint.IsLoopback ? LoopbackOnly : _ => { };

    /// <summary>The host to connect to: "localhost" may resolve to ::1, where a loopback-only port is not published.</summary>
    public static string Host(IContainer container) => container.Hostname == "localhost" ? "127.0.0.1" : container.Hostname;

    /// <summary>A socket we found is handed to Testcontainers; DOCKER_HOST (TLS settings and all) it reads itself.</summary>
    public ContainerBuilder Use(ContainerBuilder builder) => endpoint.Scheme == "unix" ? builder.WithDockerEndpoint(endpoint) : builder;

    public NetworkBuilder Use(NetworkBuilder builder) => endpoint.Scheme == "unix" ? builder.WithDockerEndpoint(endpoint) : builder;

    private static void LoopbackOnly(CreateContainerParameters parameters)
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
