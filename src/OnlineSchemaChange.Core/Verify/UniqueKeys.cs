using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Core.Verify;

/// <summary>
/// A unique key (or unique index) as the catalog describes it: its key columns in order (null for an expression), each
/// column's type and collation (what decides which values compare equal), and the rest as text (expressions,
/// predicate). <paramref name="NullsEqual"/>: NULLs collide with each other (PostgreSQL's NULLS NOT DISTINCT).
/// </summary>
public sealed record UniqueKey(string Name, IReadOnlyList<string?> Columns, IReadOnlyList<string> ColumnTypes, string Extra, bool NullsEqual = false);

/// <summary>
/// Which of the shadow's unique keys the original does not already enforce on the same values. The copy skips a row
/// that collides on such a key (it cannot tell the collision from a row the replay already wrote), so only
/// verification notices the loss: without verification, such a change must be refused.
/// </summary>
public static class UniqueKeys
{
    /// <summary>
    /// The first key of <paramref name="shadow"/> that no key of <paramref name="original"/> (renames followed through
    /// <paramref name="mapping"/>) makes safe: either its twin (same columns, types and extra), or a plain key over a
    /// subset of its columns in the same types, since rows distinct on a subset are distinct on the whole. A retyped
    /// column counts as another column, since a narrower scale or another collation can make distinct values equal.
    /// Null when every key is enforced already.
    /// </summary>
    /// <param name="names">How the engine compares column names: MySQL ignores case, PostgreSQL does not.</param>
    public static UniqueKey? FirstNew(IEnumerable<UniqueKey> original, IEnumerable<UniqueKey> shadow, ColumnMapping mapping, StringComparer names)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(shadow);
        ArgumentNullException.ThrowIfNull(mapping);
        var renamed = mapping.Pairs.ToDictionary(p => p.Source, p => p.Target, names);
        // A key over a column the ALTER drops has no counterpart in the shadow.
        var enforced = original
            .Where(k => k.Columns.All(c => c is null || renamed.ContainsKey(c)))
            .Select(k => k with { Columns = k.Columns.Select(c => c is null ? null : renamed[c]).ToList() })
            .ToList();
        return shadow.FirstOrDefault(key => !enforced.Any(e => Twin(e, key, names) || Covers(e, key, names)));
    }

    private static bool Twin(UniqueKey a, UniqueKey b, StringComparer names) =>
        a.Extra == b.Extra && a.NullsEqual == b.NullsEqual && a.Columns.SequenceEqual(b.Columns, names) && a.ColumnTypes.SequenceEqual(b.ColumnTypes);

    private static bool Covers(UniqueKey plain, UniqueKey key, StringComparer names) =>
        plain.Extra.Length == 0 && !plain.NullsEqual && !key.NullsEqual && plain.Columns.All(c => c is not null)
        && plain.Columns.Select((c, i) => (c, plain.ColumnTypes[i]))
            .All(p => key.Columns.Select((c, i) => (c, key.ColumnTypes[i])).Any(q => q.c is not null && names.Equals(p.c, q.c) && p.Item2 == q.Item2));

    /// <summary>The refusal of a run without verification whose ALTER adds <paramref name="key"/>.</summary>
    public static OscException Unverified(UniqueKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new OscException(
            $"--skip-verify with an ALTER that adds the unique key {key.Name}, or changes which of its values compare equal: " +
            "a row that collides on it would be left out of the new table, and only verification would notice.",
            "Run without --skip-verify: verification compares every row and stops before the swap if any is missing. Nothing was changed.");
    }
}
