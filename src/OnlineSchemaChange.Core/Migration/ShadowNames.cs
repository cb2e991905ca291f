namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// The names of every table a migration creates next to the original, documented so an operator recognises them and
/// `osc cleanup` finds them: &lt;table&gt;_osc_new (the shadow), _osc_old (the original after the swap), _osc_log
/// (heartbeats and checkpoints); during the swap the
/// _osc_old name is first held by the cut-over's sentry. On PostgreSQL a materialized view rebuilt after the swap
/// lives under &lt;table&gt;_osc_mv&lt;oid&gt; until it replaces the original (<see cref="RebuiltView"/>). Each starts with the table's own name, and that is load-bearing:
/// a name sorts after every name that is a proper prefix of it, and MySQL/MariaDB take a RENAME's metadata locks in
/// name order, so the cut-over's RENAME waits on the original table first, with its exclusive request queued ahead
/// of the application's, and not on the sentry (see docs/correctness.md).
/// </summary>
public sealed class ShadowNames
{
    private const int LongestSuffix = 8; // "_osc_new"

    private readonly int maxLength;

    public ShadowNames(string table, int maxLength)
    {
        ArgumentException.ThrowIfNullOrEmpty(table);
        if (table.Length + LongestSuffix > maxLength)
        {
            throw new OscException(
                $"The table name {table} is too long for the migration's own tables ({maxLength - LongestSuffix} characters at most).",
                "Rename the table first (RENAME TABLE is instant), or change it natively; `osc plan` tells how that runs.");
        }

        Table = table;
        this.maxLength = maxLength;
        Shadow = table + "_osc_new";
        Old = table + "_osc_old";
        Log = table + "_osc_log";
        ForeignKeyProbe = table + "_osc_fkc";
        ReplayKey = table + "_osc_key";
    }

    public string Table { get; }

    public string Shadow { get; }

    public string Old { get; }

    public string Log { get; }

    /// <summary>An empty copy of a referencing table, on which a foreign key's move is tried before the copy (MySQL).</summary>
    public string ForeignKeyProbe { get; }

    /// <summary>
    /// An index over the original's key on the shadow, made when the ALTER changes the primary key and leaves none the
    /// replay can find rows by: on PostgreSQL a unique one (ON CONFLICT needs one over exactly those columns), on MySQL
    /// a plain one (its deletes need one that starts with them). Dropped by the swap, under its lock.
    /// </summary>
    public string ReplayKey { get; }

    /// <summary>
    /// PostgreSQL: the temporary name of a materialized view (or of one of its indexes, "_osc_mvi") rebuilt on the new
    /// table after the swap, &lt;table&gt;_osc_mv&lt;oid of the original view or index&gt;. The table's name is cut
    /// when the whole would pass the identifier limit, so the name alone does not prove the object ours: the rebuild
    /// also marks it with a comment naming the table, and `osc cleanup` drops only what carries both.
    /// </summary>
    public string RebuiltView(uint oid, bool index = false)
    {
        string suffix = (index ? "_osc_mvi" : "_osc_mv") + oid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Table[..Math.Min(Table.Length, maxLength - suffix.Length)] + suffix;
    }

    /// <summary>The tables a run creates and removes itself; one left behind means a run did not finish.</summary>
    public IEnumerable<string> Created => [Shadow, Log, ForeignKeyProbe];
}
