using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Copy;

/// <summary>
/// What keeps the lock-free copy from writing back a state the replay has already replaced: the fence the applier
/// waits on, and the transactions the stream has passed on, which each chunk's snapshot must see.
/// </summary>
public sealed record PostgresCopyOrdering(CopyFence Fence, ReceivedTransactions Received);
