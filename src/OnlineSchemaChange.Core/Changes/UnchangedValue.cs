namespace OnlineSchemaChange.Core.Changes;

/// <summary>
/// Stands in a replicated row for a column whose value the stream did not send because the change left it as it was:
/// PostgreSQL's logical replication omits an unchanged out-of-line (TOASTed) value from an UPDATE. It is not NULL: a
/// writer must leave such a column alone, never write it.
/// </summary>
public sealed class UnchangedValue
{
    private UnchangedValue()
    {
    }

    public static UnchangedValue Instance { get; } = new();

    public override string ToString() => "(unchanged)";

    /// <summary>Whether any value of <paramref name="row"/> is the unchanged marker.</summary>
    public static bool AnyIn(IReadOnlyList<object?> row)
    {
        ArgumentNullException.ThrowIfNull(row);
        for (int i = 0; i < row.Count; i++)
        {
            if (row[i] is UnchangedValue)
            {
                return true;
            }
        }

        return false;
    }
}
