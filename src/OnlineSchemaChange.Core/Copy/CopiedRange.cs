using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// Keys after <see cref="LowerExclusive"/> up to and including <see cref="UpperInclusive"/> (to the end of the table
/// when null) that the copy finished beyond its watermark: chunks that finished out of order, recorded so that a
/// resumed run does not copy them again.
/// </summary>
public sealed record CopiedRange(RowKey LowerExclusive, RowKey? UpperInclusive);

/// <summary>Where the copy stands, sampled at one instant.</summary>
/// <param name="Watermark">Every key up to and including this one is copied (null: nothing yet).</param>
/// <param name="CopiedAhead">Ranges beyond the watermark that are copied too, in key order, adjacent ones merged.</param>
/// <param name="Finished">The whole table is copied.</param>
/// <param name="RowsCopied">Rows of the finished ranges, up to the watermark and beyond it, copied by this run.</param>
public sealed record CopyProgress(RowKey? Watermark, IReadOnlyList<CopiedRange> CopiedAhead, bool Finished, long RowsCopied);
