namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// Which column of the original feeds which column of the shadow: same name, or the new name of a renamed column.
/// Dropped columns have no target; generated columns are never copied (the shadow computes its own), and columns
/// only the shadow has take their defaults.
/// </summary>
public sealed class ColumnMapping
{
    private ColumnMapping(IReadOnlyList<(int SourceIndex, string Source, string Target)> pairs) => Pairs = pairs;

    /// <summary>Mapped columns in source order: the source column's position in a source row, its name, the target name.</summary>
    public IReadOnlyList<(int SourceIndex, string Source, string Target)> Pairs { get; }

    public IEnumerable<string> SourceColumns => Pairs.Select(p => p.Source);

    public IEnumerable<string> TargetColumns => Pairs.Select(p => p.Target);

    public static ColumnMapping Build(IReadOnlyList<TableColumn> source, IReadOnlyList<TableColumn> target, IReadOnlyDictionary<string, string> renames)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(renames);
        var targets = target.Where(c => !c.Generated).ToDictionary(c => c.Name, StringComparer.OrdinalIgnoreCase);
        var pairs = new List<(int, string, string)>();
        for (int i = 0; i < source.Count; i++)
        {
            TableColumn column = source[i];
            string targetName = renames.TryGetValue(column.Name, out string? renamed) ? renamed : column.Name;
            if (!column.Generated && targets.TryGetValue(targetName, out TableColumn? match))
            {
                pairs.Add((i, column.Name, match.Name));
            }
        }

        return new ColumnMapping(pairs);
    }

    /// <summary>The target-ordered values of a source row (as replication delivers it, in source column order).</summary>
    public object?[] Project(IReadOnlyList<object?> sourceRow)
    {
        ArgumentNullException.ThrowIfNull(sourceRow);
        var values = new object?[Pairs.Count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = sourceRow[Pairs[i].SourceIndex];
        }

        return values;
    }
}

/// <summary>A column as the copy needs to know it.</summary>
public sealed record TableColumn(string Name, bool Generated);
