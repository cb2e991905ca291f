namespace OnlineSchemaChange.Core;

/// <summary>
/// A failure we can explain to the operator: what went wrong and how to fix it. Anything else is a bug.
/// </summary>
public class OscException : Exception
{
    public OscException(string message, string? hint = null, Exception? inner = null)
        : base(message, inner) => Hint = hint;

    public OscException()
    {
    }

    public OscException(string message) : base(message)
    {
    }

    public OscException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>What the operator can do about it, if we know.</summary>
    public string? Hint { get; }
}

/// <summary>The ALTER text itself is unusable: empty, several statements, another table, unbalanced quotes.</summary>
public sealed class InvalidAlterException : OscException
{
    public InvalidAlterException(string message, string? hint = null) : base(message, hint)
    {
    }

    public InvalidAlterException()
    {
    }

    public InvalidAlterException(string message) : base(message)
    {
    }

    public InvalidAlterException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
