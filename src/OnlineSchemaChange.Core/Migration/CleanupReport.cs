namespace OnlineSchemaChange.Core.Migration;

/// <summary>What `osc cleanup` did: what it dropped and what it left for the operator (the swapped-out original).</summary>
public sealed record CleanupReport(IReadOnlyList<string> Dropped, IReadOnlyList<string> Kept)
{
    /// <summary>What the operator must still do, with the statements (PostgreSQL: materialized views still reading the original).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}
