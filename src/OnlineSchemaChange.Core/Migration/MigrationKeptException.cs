namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// A migration stopped (failed, or cancelled by Ctrl-C / SIGTERM) and kept its shadow and bookkeeping table with a
/// checkpoint, so `--resume` can continue it. The message says why it stopped; <see cref="KeptTables"/> what is left.
/// </summary>
public sealed class MigrationKeptException : OscException
{
    public MigrationKeptException(string message, string? hint, bool cancelled, IReadOnlyList<string> keptTables, Exception? inner)
        : base(message, hint, inner)
    {
        Cancelled = cancelled;
        KeptTables = keptTables;
    }

    public MigrationKeptException()
    {
    }

    public MigrationKeptException(string message) : base(message)
    {
    }

    public MigrationKeptException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>True when the operator stopped it (exit code 130), false when it failed.</summary>
    public bool Cancelled { get; }

    public IReadOnlyList<string> KeptTables { get; } = [];

    /// <summary>True when the tables were already swapped: what is kept finishes the steps after the swap.</summary>
    public bool Swapped { get; init; }
}
