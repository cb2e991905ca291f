using MySqlConnector;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.MySql.Schema;

/// <summary>
/// Primary-key predicates written so the range optimizer uses the key: "(a, b) > (x, y)" spelled out as
/// "a > x OR (a = x AND b > y)", which MariaDB and every MySQL version turn into a range scan.
/// </summary>
/// <param name="indexName">The index over the key: PRIMARY, or the NOT NULL unique key InnoDB clusters a table without one on.</param>
public sealed class MySqlKeyPredicate(IReadOnlyList<string> keyColumns, string indexName = "PRIMARY")
{
    public IReadOnlyList<string> Columns { get; } = keyColumns;

    /// <summary>FORCE INDEX over the key, so a range read walks it in key order (a hint naming PRIMARY fails on a table without one).</summary>
    public string ForceIndex { get; } = $"FORCE INDEX ({(indexName.Equals("PRIMARY", StringComparison.OrdinalIgnoreCase) ? "PRIMARY" : MySqlSql.Quote(indexName))})";

    public string ColumnList => string.Join(", ", Columns.Select(MySqlSql.Quote));

    /// <summary>key &gt; values (strict) or key &gt;= / &lt;= as asked, with parameters added to the command.</summary>
    public string Compare(RowKey key, string op, MySqlCommand command, string prefix)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(command);
        string strict = op[..1];
        bool inclusive = op.Length == 2;
        var ors = new List<string>();
        for (int i = 0; i < Columns.Count; i++)
        {
            var ands = new List<string>();
            for (int j = 0; j < i; j++)
            {
                ands.Add($"{MySqlSql.Quote(Columns[j])} = @{prefix}{j}");
            }

            bool last = i == Columns.Count - 1;
            ands.Add($"{MySqlSql.Quote(Columns[i])} {(last && inclusive ? op : strict)} @{prefix}{i}");
            ors.Add("(" + string.Join(" AND ", ands) + ")");
        }

        for (int i = 0; i < Columns.Count; i++)
        {
            command.Parameters.AddWithValue($"@{prefix}{i}", key.Values[i]);
        }

        return "(" + string.Join(" OR ", ors) + ")";
    }

    /// <summary>key IN (k1, k2, ...) for a batch of keys.</summary>
    public string In(IReadOnlyList<RowKey> keys, MySqlCommand command, string prefix)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(command);
        var tuples = new List<string>(keys.Count);
        for (int k = 0; k < keys.Count; k++)
        {
            var names = new List<string>(Columns.Count);
            for (int i = 0; i < Columns.Count; i++)
            {
                string name = $"@{prefix}{k}_{i}";
                command.Parameters.AddWithValue(name, keys[k].Values[i]);
                names.Add(name);
            }

            tuples.Add(Columns.Count == 1 ? names[0] : "(" + string.Join(", ", names) + ")");
        }

        return $"{(Columns.Count == 1 ? ColumnList : "(" + ColumnList + ")")} IN ({string.Join(", ", tuples)})";
    }

    public RowKey Read(MySqlDataReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var values = new object?[Columns.Count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
        }

        return new RowKey(values);
    }
}
