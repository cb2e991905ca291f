namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>
/// A flag file for osc to watch (--throttle-flag-file, --postpone-cut-over-flag-file): it exists from construction
/// until <see cref="Lift"/> or disposal, in the temporary directory under a name of its own.
/// </summary>
public sealed class FlagFile : IDisposable
{
    public FlagFile(string what)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"osc-{what}-{Guid.NewGuid():N}");
        File.WriteAllText(Path, "");
    }

    public string Path { get; }

    /// <summary>Removes the file: what it held goes on.</summary>
    public void Lift() => File.Delete(Path);

    public void Dispose() => Lift();
}
