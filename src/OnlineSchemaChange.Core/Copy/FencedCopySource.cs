using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>A copy source whose chunk copies pass through a <see cref="CopyFence"/> shared with the applier.</summary>
public sealed class FencedCopySource(ICopySource inner, CopyFence fence) : ICopySource
{
    public Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken) =>
        inner.FindChunkEndAsync(afterKey, rows, cancellationToken);

    public async Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken)
    {
        using IDisposable passage = fence.Enter();
        return await inner.CopyRangeAsync(range, cancellationToken);
    }
}
