using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Verify;

/// <summary>
/// The per-row text both tables are hashed on. A column whose type the ALTER changed is converted to the shadow's
/// type on both sides, so values compare in the new types (5 as INT and as BIGINT, a DATETIME and the same
/// DATETIME(6) hash alike) and a conversion that changed a value shows. A column whose definition (type, character set
/// and collation) is the same on both sides holds the same bytes on both when it holds the same value, so it is taken
/// as it is, with no conversion: numbers and temporal values as their text, every other type as the CRC32 of its bytes
/// (no separator can occur in either, and no character set conversion happens inside the row's text). That is most
/// columns of most ALTERs, and converting them cost about six times the rest of the checksum. NULL is marked apart from
/// the empty string (CONCAT_WS skips NULL), except in an unchanged column that is NOT NULL on both sides, where the
/// mark would always be 0 and building its text cost a tenth of the whole checksum.
/// </summary>
public static class MySqlChecksumExpression
{
    public static (string Original, string Shadow) Build(ColumnMapping mapping, IReadOnlyDictionary<string, string> shadowTypes,
        IReadOnlySet<string>? unchangedTargets = null, IReadOnlySet<string>? neverNullTargets = null)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        ArgumentNullException.ThrowIfNull(shadowTypes);
        var original = new List<string>();
        var shadow = new List<string>();
        foreach (var (_, source, target) in mapping.Pairs)
        {
            string type = shadowTypes[target];
            if (unchangedTargets?.Contains(target) == true)
            {
                bool mayBeNull = neverNullTargets?.Contains(target) != true;
                original.Add(AsItIs(MySqlSql.Quote(source), type, mayBeNull));
                shadow.Add(AsItIs(MySqlSql.Quote(target), type, mayBeNull));
            }
            else
            {
                original.Add(Normalize(MySqlSql.Quote(source), type));
                shadow.Add(Normalize(MySqlSql.Quote(target), type));
            }
        }

        return (Row(original), Row(shadow));
    }

    private static string Row(List<string> parts) => "CONCAT_WS('#', " + string.Join(", ", parts) + ")";

    private static string AsItIs(string column, string type, bool mayBeNull)
    {
        string t = type.ToLowerInvariant();
        bool plainText = (t.Contains("int", StringComparison.Ordinal) && !t.Contains("point", StringComparison.Ordinal))
                         || t.StartsWith("decimal", StringComparison.Ordinal) || t.StartsWith("float", StringComparison.Ordinal)
                         || t.StartsWith("double", StringComparison.Ordinal) || t.StartsWith("date", StringComparison.Ordinal)
                         || t.StartsWith("time", StringComparison.Ordinal) || t.StartsWith("year", StringComparison.Ordinal);
        string value = plainText ? column : $"CRC32({column})";
        return mayBeNull ? $"{value}, ISNULL({column})" : value;
    }

    private static string Normalize(string column, string shadowType)
    {
        string t = shadowType.ToLowerInvariant();
        string value = t switch
        {
            _ when t.Contains("blob", StringComparison.Ordinal) || t.Contains("binary", StringComparison.Ordinal) || t.StartsWith("bit", StringComparison.Ordinal) => $"HEX({column})",
            _ when t.StartsWith("char", StringComparison.Ordinal) || t.StartsWith("varchar", StringComparison.Ordinal) || t.Contains("text", StringComparison.Ordinal)
                   || t.StartsWith("enum", StringComparison.Ordinal) || t.StartsWith("set", StringComparison.Ordinal) || t.StartsWith("json", StringComparison.Ordinal)
                => $"HEX(CONVERT({column} USING utf8mb4))",
            _ when t.Contains("int", StringComparison.Ordinal) => $"CAST({column} AS {(t.Contains("unsigned", StringComparison.Ordinal) ? "UNSIGNED" : "SIGNED")})",
            _ when t.StartsWith("decimal", StringComparison.Ordinal) => $"CAST({column} AS {shadowType.ToUpperInvariant().Replace(" UNSIGNED", "", StringComparison.Ordinal)})",
            _ when t.StartsWith("datetime", StringComparison.Ordinal) || t.StartsWith("timestamp", StringComparison.Ordinal)
                => $"CAST({column} AS DATETIME{Precision(t)})",
            _ when t.StartsWith("time", StringComparison.Ordinal) => $"CAST({column} AS TIME{Precision(t)})",
            _ when t.StartsWith("date", StringComparison.Ordinal) => $"CAST({column} AS DATE)",
            _ when t.StartsWith("float", StringComparison.Ordinal) || t.StartsWith("double", StringComparison.Ordinal) => $"CAST({column} AS DOUBLE)",
            _ => column,
        };
        return $"{value}, ISNULL({column})";
    }

    private static string Precision(string type)
    {
        int open = type.IndexOf('(', StringComparison.Ordinal);
        return open < 0 ? "" : type[open..(type.IndexOf(')', StringComparison.Ordinal) + 1)];
    }
}
