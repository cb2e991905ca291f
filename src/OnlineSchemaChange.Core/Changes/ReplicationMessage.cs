namespace OnlineSchemaChange.Core.Changes;

/// <summary>
/// What a replication stream hands the applier: row changes of the migrated table, and the end of each source
/// transaction with its position. Changes stream one by one, so a million-row transaction never sits in memory whole;
/// the applier only reports a position once everything before it is written.
/// </summary>
public abstract record ReplicationMessage;

public sealed record RowChangeMessage(RowChange Change) : ReplicationMessage;

/// <summary>A source transaction ended (or the stream advanced with no change for us, as a heartbeat does).</summary>
public sealed record PositionMessage(ReplicationPosition Position) : ReplicationMessage;
