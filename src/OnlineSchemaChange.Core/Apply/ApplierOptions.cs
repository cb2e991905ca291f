namespace OnlineSchemaChange.Core.Apply;

public sealed record ApplierOptions
{
    /// <summary>Flush once this many distinct keys are pending: bounds memory and statement size.</summary>
    public int MaxPendingKeys { get; init; } = 1000;

    /// <summary>Flush at least this often under a steady stream, so lag stays bounded.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromMilliseconds(200);
}
