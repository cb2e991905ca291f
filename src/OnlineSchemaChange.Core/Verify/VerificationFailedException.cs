namespace OnlineSchemaChange.Core.Verify;

/// <summary>
/// The shadow still differs from the original after repairs: the ALTER itself loses or merges rows (a unique key over
/// duplicates, say). Resuming would end the same way, so nothing is kept for it.
/// </summary>
public sealed class VerificationFailedException : OscException
{
    public VerificationFailedException(string message, string? hint) : base(message, hint)
    {
    }

    public VerificationFailedException()
    {
    }

    public VerificationFailedException(string message) : base(message)
    {
    }

    public VerificationFailedException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
