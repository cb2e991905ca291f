namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// A row of the original does not fit the new definition: a value too long or out of range for its new type, a NULL
/// for a NOT NULL column, a row a new CHECK or foreign key refuses. The server refuses the write, as it would refuse
/// the native ALTER; a resume would meet the same row, so nothing is kept for one.
/// </summary>
public sealed class DataDoesNotFitException : OscException
{
    public const string Fix =
        "Every row must fit the new definition, as a native ALTER requires: fix the rows that do not, or change the ALTER, then run it again. " +
        "Nothing was swapped; the original is untouched and osc removed what it created.";

    public DataDoesNotFitException(string message, Exception inner) : base(message, Fix, inner)
    {
    }

    /// <summary>The server refused <paramref name="where"/> (which rows were being written) with <paramref name="serverMessage"/>.</summary>
    public static DataDoesNotFitException Refused(string where, string serverMessage, Exception inner) =>
        new($"The new definition does not fit the data: the server refused {where}: {serverMessage}", inner);

    public DataDoesNotFitException()
    {
    }

    public DataDoesNotFitException(string message) : base(message)
    {
    }
}
