namespace OnlineSchemaChange.Core.Migration;

/// <summary>What `osc cleanup` did: what it dropped and what it left for the operator (the swapped-out original).</summary>
public sealed record CleanupReport(IReadOnlyList<string> Dropped, IReadOnlyList<string> Kept);
