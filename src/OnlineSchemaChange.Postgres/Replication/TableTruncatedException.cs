using OnlineSchemaChange.Core;

namespace OnlineSchemaChange.Postgres.Replication;

/// <summary>
/// The original was truncated during the migration: the stream cannot replay it into the shadow. A resume would meet
/// the same TRUNCATE in the slot and stop again, so nothing is kept for it.
/// </summary>
public sealed class TableTruncatedException : OscException
{
    public TableTruncatedException(string message, string? hint) : base(message, hint)
    {
    }

    public TableTruncatedException()
    {
    }

    public TableTruncatedException(string message) : base(message)
    {
    }

    public TableTruncatedException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
