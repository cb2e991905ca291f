namespace OnlineSchemaChange.Core.Checkpoint;

/// <summary>Where an engine keeps the latest checkpoint: next to the table, so it lives and dies with the shadow.</summary>
public interface ICheckpointStore
{
    /// <summary>Replaces the stored checkpoint; durable when the returned task completes.</summary>
    Task SaveAsync(MigrationCheckpoint checkpoint, CancellationToken cancellationToken);

    /// <summary>The stored checkpoint, or null when there is none.</summary>
    Task<MigrationCheckpoint?> LoadAsync(CancellationToken cancellationToken);
}
