using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// Cuts the copy's chunks by arithmetic over a dense single integer key (<see cref="KeySpan.IsDenseInteger"/>): a chunk
/// of n rows ends n key values after the previous one, where walking n index entries to find its end cost the server
/// 60-85 ms of CPU per 100,000-row chunk on MariaDB, next to a copy of 250 ms. A chunk never holds more rows than asked,
/// fewer where keys were deleted; the chunk sizer, which measures rows per second, keeps each near its target time.
/// Any other key, a sparse one, or no row estimate: the inner source walks the key. Where the arithmetic reaches the
/// maximum read at the start, the maximum is read again, so rows appended meanwhile are cut into chunks as well instead
/// of all falling into the last, open-ended one.
/// </summary>
public sealed class WidthChunkedCopySource(ICopySource inner, IKeySpanSource spans) : ICopySource
{
    private KeySpan? _span;
    private bool _spanRead;

    /// <summary>True once the first chunk was cut and the key turned out dense: chunks are cut by arithmetic.</summary>
    public bool CutsByWidth => _span is not null;

    // Called by the copier's single producer only, one call at a time.
    public async Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken)
    {
        if (!_spanRead)
        {
            KeySpan? span = await spans.ReadKeySpanAsync(cancellationToken);
            _span = span is { IsDenseInteger: true } ? span : null;
            _spanRead = true;
        }

        if (_span is null || (afterKey is not null && (afterKey.Values.Count != 1 || !KeySpan.IsInteger(afterKey.Values[0]))))
        {
            return await inner.FindChunkEndAsync(afterKey, rows, cancellationToken);
        }

        decimal start = afterKey is null ? KeySpan.ToDecimal(_span.Min) - 1 : KeySpan.ToDecimal(afterKey.Values[0]!);
        decimal end = start + rows;
        if (end >= KeySpan.ToDecimal(_span.Max))
        {
            if (await spans.ReadKeySpanAsync(cancellationToken) is { } now && KeySpan.IsInteger(now.Max))
            {
                _span = _span with { Max = now.Max };
            }

            if (end >= KeySpan.ToDecimal(_span.Max))
            {
                return null;
            }
        }

        return new RowKey(_span.InKeyType(end));
    }

    public Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken) => inner.CopyRangeAsync(range, cancellationToken);
}
