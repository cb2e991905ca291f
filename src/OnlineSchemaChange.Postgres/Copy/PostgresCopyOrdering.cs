using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Copy;

/// <summary>
/// What keeps the lock-free copy from writing back a state the replay has already replaced: the fence the applier
/// waits on, and the transactions the stream has passed on, which each chunk's snapshot must see.
/// <see cref="ShadowAheadEmpty"/>: the replay leaves keys ahead of the copy alone (a <see cref="CopyFrontier"/>), so a
/// chunk normally finds none of its keys in the shadow and may insert without ON CONFLICT.
/// </summary>
public sealed record PostgresCopyOrdering(CopyFence Fence, ReceivedTransactions Received, bool ShadowAheadEmpty = false);
