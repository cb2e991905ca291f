using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Checkpoint;

/// <summary>
/// Where an interrupted migration can pick up: every key up to <see cref="Watermark"/> is copied (or the whole copy,
/// when <see cref="CopyFinished"/>), and every change up to <see cref="Position"/> is written to the shadow. The
/// position is the engine's own text form (binlog file:offset, an LSN), read back by the engine that wrote it.
/// <see cref="Statement"/> and <see cref="Digest"/> say which migration this is: a resume must ask for the same one.
/// </summary>
public sealed record MigrationCheckpoint(
    string Statement,
    string Digest,
    RowKey? Watermark,
    bool CopyFinished,
    string Position,
    long RowsCopied,
    DateTimeOffset Time);
