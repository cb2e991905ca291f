using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>The engine's side of the copy: finding chunk boundaries by primary key and copying one range.</summary>
public interface ICopySource
{
    /// <summary>
    /// The key <paramref name="rows"/> rows after <paramref name="afterKey"/> in key order (from the start when null),
    /// or null when fewer rows than that remain.
    /// </summary>
    Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken);

    /// <summary>Copies the range into the shadow table (leaving rows already there alone) and returns the rows it covered.</summary>
    Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken);
}
