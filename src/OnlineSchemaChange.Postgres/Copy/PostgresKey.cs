using Npgsql;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Copy;

/// <summary>
/// A table's key columns and their types, turned into SQL: the column list for ORDER BY, and row-value comparisons
/// ((a, b) &gt; ($1, $2)) that PostgreSQL answers from the key's index, composite keys included. Parameters are cast to
/// the column's own type so that a key read back as text (an enum) or as a .NET type with several mappings compares
/// exactly as the index orders it.
/// </summary>
public sealed class PostgresKey
{
    public PostgresKey(IReadOnlyList<string> columns, IReadOnlyList<string> types)
    {
        ArgumentNullException.ThrowIfNull(columns);
        ArgumentNullException.ThrowIfNull(types);
        if (columns.Count == 0 || columns.Count != types.Count)
        {
            throw new ArgumentException("A key needs at least one column, and one type per column.", nameof(columns));
        }

        Columns = columns;
        Types = types;
    }

    public IReadOnlyList<string> Columns { get; }

    public IReadOnlyList<string> Types { get; }

    /// <summary>"a", "b": for ORDER BY and SELECT.</summary>
    public string ColumnList => string.Join(", ", Columns.Select(PostgresSql.Quote));

    /// <summary>The same columns qualified with a table alias.</summary>
    public string QualifiedList(string alias) => string.Join(", ", Columns.Select(c => alias + "." + PostgresSql.Quote(c)));

    /// <summary>"(a, b) op ($n::t, $n+1::t)", adding the key's values as positional parameters to the command.</summary>
    public string Compare(RowKey key, string op, NpgsqlCommand command, string? alias = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(command);
        var placeholders = new List<string>();
        for (int i = 0; i < Columns.Count; i++)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = key.Values[i] ?? DBNull.Value });
            placeholders.Add($"${command.Parameters.Count}::{Types[i]}");
        }

        string columns = alias is null ? ColumnList : QualifiedList(alias);
        return $"({columns}) {op} ({string.Join(", ", placeholders)})";
    }

    /// <summary>"lo &lt; key AND key &lt;= hi" for a range, or "true" for the whole table.</summary>
    public string Range(RowKey? lowerExclusive, RowKey? upperInclusive, NpgsqlCommand command, string? alias = null)
    {
        var conditions = new List<string>();
        if (lowerExclusive is not null)
        {
            conditions.Add(Compare(lowerExclusive, ">", command, alias));
        }

        if (upperInclusive is not null)
        {
            conditions.Add(Compare(upperInclusive, "<=", command, alias));
        }

        return conditions.Count == 0 ? "true" : string.Join(" AND ", conditions);
    }

    /// <summary>Reads the key from the first columns of the current row.</summary>
    public static RowKey Read(NpgsqlDataReader reader, int count)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var values = new object?[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
        }

        return new RowKey(values);
    }
}
