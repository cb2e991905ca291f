namespace OnlineSchemaChange.Core.Verify;

/// <summary>What verification found: rows compared, chunks compared, and the chunks it had to repair.</summary>
public sealed record VerificationResult(long Rows, int Chunks, int RepairedChunks);
