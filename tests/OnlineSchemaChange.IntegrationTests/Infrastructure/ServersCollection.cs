using System.Diagnostics.CodeAnalysis;

namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>Tests in this collection share one set of servers, started on first use and stopped after the last test.</summary>
[CollectionDefinition("servers")]
[SuppressMessage("Naming", "CA1711", Justification = "xUnit's own naming for a collection definition; tests refer to it by this name.")]
public sealed class ServersCollection : ICollectionFixture<ServersFixture>;
