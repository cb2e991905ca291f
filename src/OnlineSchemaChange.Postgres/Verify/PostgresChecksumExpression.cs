using System.Text.RegularExpressions;

namespace OnlineSchemaChange.Postgres.Verify;

/// <summary>
/// The 64-bit hash of one row that verification sums and XORs on both sides, over the mapped columns in the new types.
/// From PostgreSQL 14 it is hash_record_extended over a record of the columns, which hashes each value with its
/// type's own hash function: on pgbench_accounts half the time of hashing the record's text form (1,000,000 rows:
/// 0.19 s against 0.36 s), which is where most of verification's time goes. Only types whose hash tells apart
/// every two values their text tells apart enter as they are (integers, booleans, dates, timestamps, uuid, bytea);
/// strings enter under the "C" collation, so a nondeterministic collation cannot make 'a' and 'A' hash alike; every
/// other type (numeric, whose hash ignores the display scale, floats, intervals, json, arrays, enums, domains, ...)
/// enters as its text. NULL hashes apart from '' either way. Before 14 the whole record's text form is hashed.
/// </summary>
public static class PostgresChecksumExpression
{
    private static readonly Regex TypeModifier = new(@"\(\d+(,\d+)?\)", RegexOptions.CultureInvariant);

    private static readonly HashSet<string> HashedAsTheyAre = new(StringComparer.Ordinal)
    {
        "smallint", "integer", "bigint", "boolean", "date", "uuid", "bytea", "oid",
        "timestamp without time zone", "timestamp with time zone", "time without time zone",
    };

    /// <summary>The hash of a row whose mapped columns, in the new types, are <paramref name="columns"/>.</summary>
    public static string RowHash(IReadOnlyList<(string Value, string Type)> columns, int serverMajorVersion)
    {
        ArgumentNullException.ThrowIfNull(columns);
        return serverMajorVersion >= 14
            ? $"hash_record_extended(ROW({string.Join(", ", columns.Select(c => Part(c.Value, c.Type)))}), 0)"
            : $"hashtextextended(ROW({string.Join(", ", columns.Select(c => c.Value))})::text, 0)";
    }

    private static string Part(string value, string type)
    {
        // Precision modifiers do not change the hash function: timestamp(3) hashes as timestamp.
        string baseType = TypeModifier.Replace(type, "");
        if (HashedAsTheyAre.Contains(baseType))
        {
            return value;
        }

        return baseType is "text" or "character varying" or "character"
            ? $"({value}) COLLATE \"C\""
            : $"({value})::text COLLATE \"C\"";
    }
}
