namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// The original was altered, truncated, dropped or renamed by someone else during the migration: the shadow, built
/// from the definition the migration started with, can no longer become the table. A resume would refuse the changed
/// table, so nothing is kept for it.
/// </summary>
public sealed class TableChangedException : OscException
{
    public TableChangedException(string message, string? hint) : base(message, hint)
    {
    }

    public TableChangedException()
    {
    }

    public TableChangedException(string message) : base(message)
    {
    }

    public TableChangedException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
