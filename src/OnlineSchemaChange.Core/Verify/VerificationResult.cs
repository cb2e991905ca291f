namespace OnlineSchemaChange.Core.Verify;

/// <summary>What verification found: rows compared, chunks compared, and the chunks it had to repair.</summary>
public sealed record VerificationResult(long Rows, int Chunks, int RepairedChunks)
{
    /// <summary>
    /// How long writes to the original waited on verification's lock, summed over every time it was taken: from the
    /// lock request (writes queue behind a waiting request too) to its release. Null when the engine does not time it.
    /// </summary>
    public TimeSpan? WritesBlocked { get; init; }
}
