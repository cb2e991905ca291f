using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Core.Checkpoint;

/// <summary>
/// Where an interrupted migration can pick up: every key up to <see cref="Watermark"/> is copied (or the whole copy,
/// when <see cref="CopyFinished"/>), so is every range of <see cref="CopiedAhead"/>, and every change up to
/// <see cref="Position"/> is written to the shadow. The position is the engine's own text form (binlog file:offset,
/// an LSN), read back by the engine that wrote it.
/// <see cref="Statement"/> and <see cref="Digest"/> say which migration this is: a resume must ask for the same one.
/// </summary>
public sealed record MigrationCheckpoint(
    string Statement,
    string Digest,
    RowKey? Watermark,
    bool CopyFinished,
    string Position,
    long RowsCopied,
    DateTimeOffset Time)
{
    /// <summary>Ranges beyond <see cref="Watermark"/> that are copied too (chunks that finished out of order), in key order.</summary>
    public IReadOnlyList<CopiedRange> CopiedAhead { get; init; } = [];

    // Compared by value, ranges included, as the rest of the record is.
    public bool Equals(MigrationCheckpoint? other) =>
        other is not null && Statement == other.Statement && Digest == other.Digest && Equals(Watermark, other.Watermark)
        && CopyFinished == other.CopyFinished && Position == other.Position && RowsCopied == other.RowsCopied && Time == other.Time
        && CopiedAhead.SequenceEqual(other.CopiedAhead);

    public override int GetHashCode() => HashCode.Combine(Statement, Digest, Watermark, CopyFinished, Position, RowsCopied, Time, CopiedAhead.Count);
}
