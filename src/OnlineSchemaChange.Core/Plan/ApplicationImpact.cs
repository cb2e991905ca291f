namespace OnlineSchemaChange.Core.Plan;

public enum ImpactKind
{
    DropColumn,
    RenameColumn,

    /// <summary>A type change that can reject or alter values the application writes or reads.</summary>
    IncompatibleType,
    RenameTable,
}

/// <summary>A change that running application code notices, whatever lock the server takes.</summary>
public sealed record ApplicationImpact(ImpactKind Kind, string Subject, string Explanation)
{
    public string? NewName { get; init; }

    public string? OldType { get; init; }

    public string? NewType { get; init; }
}
