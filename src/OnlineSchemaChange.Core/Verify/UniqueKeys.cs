using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Core.Verify;

/// <summary>
/// A unique key (or unique index) as the catalog describes it: its key columns in order (null for an expression), each
/// column's type and collation (what decides which values compare equal), and the rest as text (expressions,
/// predicate). <paramref name="NullsEqual"/>: NULLs collide with each other (PostgreSQL's NULLS NOT DISTINCT).
/// <paramref name="Exclusion"/>: an exclusion constraint (PostgreSQL), whose rows collide by its operators, not by equality.
/// </summary>
public sealed record UniqueKey(string Name, IReadOnlyList<string?> Columns, IReadOnlyList<string> ColumnTypes, string Extra, bool NullsEqual = false, bool Exclusion = false);

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
        ArgumentNullException.ThrowIfNull(shadow);
        List<UniqueKey> enforced = InShadowNames(original, mapping, names);
        return shadow.FirstOrDefault(key => !IsEnforced(key, enforced, names));
    }

    /// <summary>
    /// The keys of <paramref name="shadow"/> that the copy may leave out until it is done, to be built afterwards: those
    /// two rows of different keys can collide on (<see cref="FirstBesideKey"/>) and that the original already enforces
    /// (<see cref="FirstNew"/>), so the build cannot meet duplicates once the shadow has caught up with the original.
    /// Without them in the shadow, a value that moves between rows during the copy meets no older version of itself.
    /// </summary>
    public static IReadOnlyList<UniqueKey> BuildableAfterCopy(IEnumerable<UniqueKey> original, IEnumerable<UniqueKey> shadow, ColumnMapping mapping,
        IReadOnlyCollection<string> keyInShadow, StringComparer names)
    {
        ArgumentNullException.ThrowIfNull(shadow);
        ArgumentNullException.ThrowIfNull(keyInShadow);
        List<UniqueKey> enforced = InShadowNames(original, mapping, names);
        return shadow.Where(key => CollidesAcrossRows(key, keyInShadow, names) && IsEnforced(key, enforced, names)).ToList();
    }

    /// <summary>The original's keys under the shadow's column names; a key over a column the ALTER drops has no counterpart.</summary>
    private static List<UniqueKey> InShadowNames(IEnumerable<UniqueKey> original, ColumnMapping mapping, StringComparer names)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(mapping);
        var renamed = mapping.Pairs.ToDictionary(p => p.Source, p => p.Target, names);
        return original
            .Where(k => k.Columns.All(c => c is null || renamed.ContainsKey(c)))
            .Select(k => k with { Columns = k.Columns.Select(c => c is null ? null : renamed[c]).ToList() })
            .ToList();
    }

    private static bool IsEnforced(UniqueKey key, List<UniqueKey> enforced, StringComparer names) => enforced.Any(e => Twin(e, key, names) || Covers(e, key, names));

    private static bool CollidesAcrossRows(UniqueKey key, IReadOnlyCollection<string> keyInShadow, StringComparer names) =>
        key.Exclusion || !keyInShadow.All(c => key.Columns.Any(column => column is not null && names.Equals(column, c)));

    private static bool Twin(UniqueKey a, UniqueKey b, StringComparer names) =>
        a.Extra == b.Extra && a.NullsEqual == b.NullsEqual && a.Columns.SequenceEqual(b.Columns, names) && a.ColumnTypes.SequenceEqual(b.ColumnTypes);

    private static bool Covers(UniqueKey plain, UniqueKey key, StringComparer names) =>
        plain.Extra.Length == 0 && !plain.NullsEqual && !key.NullsEqual && plain.Columns.All(c => c is not null)
        && plain.Columns.Select((c, i) => (c, plain.ColumnTypes[i]))
            .All(p => key.Columns.Select((c, i) => (c, key.ColumnTypes[i])).Any(q => q.c is not null && names.Equals(p.c, q.c) && p.Item2 == q.Item2));

    /// <summary>
    /// The first key of <paramref name="shadow"/> on which two rows with different keys <paramref name="keyInShadow"/>
    /// (the columns the copy and the replay find rows by) can collide: one that does not include all those columns, or
    /// an exclusion constraint. Null when there is none. While the copy runs, a value can move from one row to another
    /// (freed by an update, taken by an insert): a chunk that copies the row taking it before the replay has written
    /// the update of the row freeing it meets the old value in the shadow and skips the row, and the replay, which
    /// leaves rows the copy has not reached to the copy, never writes it. Verification finds that chunk and copies it
    /// again; without verification the row would be lost.
    /// </summary>
    public static UniqueKey? FirstBesideKey(IEnumerable<UniqueKey> shadow, IReadOnlyCollection<string> keyInShadow, StringComparer names)
    {
        ArgumentNullException.ThrowIfNull(shadow);
        ArgumentNullException.ThrowIfNull(keyInShadow);
        return shadow.FirstOrDefault(k => CollidesAcrossRows(k, keyInShadow, names));
    }

    /// <summary>The refusal of a run without verification on a table whose new definition has <paramref name="key"/> beside the key rows are found by.</summary>
    public static OscException UnverifiedBesideKey(UniqueKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new OscException(
            $"--skip-verify on a table with the unique key {key.Name} beside the key rows are copied by: a value that moves from one row to another while " +
            "the copy runs can make a chunk skip the row that takes it, which only verification finds and copies again.",
            "Run without --skip-verify: verification compares every chunk and copies again any that differs. Nothing was changed.");
    }

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
