namespace OnlineSchemaChange.Core.Plan;

/// <summary>
/// The backfill batch both engines share: find the key 5,000 rows ahead, then update the bounded key range. A range
/// between two keys is an index range scan however far the backfill has gone, and re-running a batch is harmless.
/// </summary>
public static class KeysetBatch
{
    public const int DefaultBatchRows = 5000;

    public static string Render(string quotedTable, IReadOnlyList<string> quotedKey, string quotedColumn, string expression)
    {
        ArgumentNullException.ThrowIfNull(quotedKey);
        string key = string.Join(", ", quotedKey);
        string tuple = quotedKey.Count == 1 ? key : $"({key})";
        return $"SELECT {key} FROM {quotedTable} WHERE {tuple} > :last_key ORDER BY {key} LIMIT 1 OFFSET {DefaultBatchRows - 1}; -- :next_key (none left: the largest key)\n"
               + $"UPDATE {quotedTable} SET {quotedColumn} = {expression} WHERE {tuple} > :last_key AND {tuple} <= :next_key;";
    }
}
