namespace OnlineSchemaChange.Core.Apply;

/// <summary>Writes one de-duplicated batch to the shadow table, atomically (one transaction). Engine-specific.</summary>
public interface IChangeWriter
{
    Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken);
}
