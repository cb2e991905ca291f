using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// One chunk of the copy: keys after <see cref="LowerExclusive"/> (from the start when null) up to and including
/// <see cref="UpperInclusive"/> (to the end of the table when null: the last chunk is open so that rows inserted
/// beyond the old maximum key while the copy ran are copied too).
/// </summary>
public sealed record KeyRange(long Sequence, RowKey? LowerExclusive, RowKey? UpperInclusive)
{
    public bool IsLast => UpperInclusive is null;

    /// <summary>"after (10) up to (20)", "after the start up to the end": the range as messages name it.</summary>
    public string Describe() => $"after {LowerExclusive?.ToString() ?? "the start"} up to {UpperInclusive?.ToString() ?? "the end"}";
}
