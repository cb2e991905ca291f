using System.Globalization;
using System.Text.RegularExpressions;

namespace OnlineSchemaChange.MySql.Plan;

/// <summary>
/// Whether a column type change keeps every value the application can write and read today (a widening), judged on
/// information_schema.COLUMNS.COLUMN_TYPE strings such as "int(11) unsigned" or "decimal(10,2)".
/// </summary>
public static partial class MySqlTypeCompatibility
{
    private static readonly string[] Integers = ["tinyint", "smallint", "mediumint", "int", "bigint"];
    private static readonly string[] Texts = ["tinytext", "text", "mediumtext", "longtext"];
    private static readonly string[] Blobs = ["tinyblob", "blob", "mediumblob", "longblob"];

    public static bool IsWidening(string oldType, string newType)
    {
        ArgumentNullException.ThrowIfNull(oldType);
        ArgumentNullException.ThrowIfNull(newType);
        var from = ParsedType.Parse(oldType);
        var to = ParsedType.Parse(newType);
        if (from.Equals(to))
        {
            return true;
        }

        int fromInt = Array.IndexOf(Integers, from.Base), toInt = Array.IndexOf(Integers, to.Base);
        if (fromInt >= 0 && toInt >= 0)
        {
            // Signed to unsigned loses negatives; unsigned to signed needs a strictly wider type.
            return from.Unsigned == to.Unsigned ? toInt >= fromInt : from.Unsigned && toInt > fromInt;
        }

        if (fromInt >= 0 && to.Base == "decimal")
        {
            return to.Arg(0) - to.Arg(1) >= IntegerDigits[fromInt];
        }

        if (from.Base is "char" or "varchar" && to.Base is "char" or "varchar")
        {
            return to.Arg(0) >= from.Arg(0);
        }

        if (from.Base is "char" or "varchar" or "tinytext" && Array.IndexOf(Texts, to.Base) >= 0)
        {
            return true;
        }

        if (Array.IndexOf(Texts, from.Base) is int ft and >= 0 && Array.IndexOf(Texts, to.Base) is int tt and >= 0)
        {
            return tt >= ft;
        }

        if (from.Base is "binary" or "varbinary" && to.Base is "binary" or "varbinary")
        {
            return to.Base == from.Base && to.Arg(0) >= from.Arg(0) || from.Base == "binary" && to.Base == "varbinary" && to.Arg(0) >= from.Arg(0);
        }

        if ((from.Base is "varbinary" || Array.IndexOf(Blobs, from.Base) >= 0) && Array.IndexOf(Blobs, to.Base) is int tb and >= 0)
        {
            return from.Base == "varbinary" || tb >= Array.IndexOf(Blobs, from.Base);
        }

        if (from.Base == "decimal" && to.Base == "decimal")
        {
            return to.Arg(1) >= from.Arg(1) && to.Arg(0) - to.Arg(1) >= from.Arg(0) - from.Arg(1);
        }

        if (from.Base == "float" && to.Base == "double")
        {
            return true;
        }

        if (from.Base is "datetime" or "time" or "timestamp" && to.Base == from.Base)
        {
            return to.Arg(0) >= from.Arg(0);
        }

        if (from.Base == "date" && to.Base == "datetime")
        {
            return true;
        }

        if (from.Base is "enum" or "set" && to.Base == from.Base)
        {
            // Appending members keeps every stored value and its position.
            return to.Members.Count >= from.Members.Count && to.Members.Take(from.Members.Count).SequenceEqual(from.Members);
        }

        return false;
    }

    // Decimal digits each integer width needs (signed or not, the larger).
    private static readonly int[] IntegerDigits = [3, 5, 8, 10, 20];

    private sealed record ParsedType(string Base, IReadOnlyList<string> Args, bool Unsigned)
    {
        public IReadOnlyList<string> Members => Args;

        public int Arg(int index) =>
            index < Args.Count && int.TryParse(Args[index], NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : 0;

        public bool Equals(ParsedType? other) =>
            other is not null && Base == other.Base && Unsigned == other.Unsigned && (IsIntegerBase || Args.SequenceEqual(other.Args));

        public override int GetHashCode() => HashCode.Combine(Base, Unsigned);

        // An integer's display width, int(11), means nothing for the values it holds.
        private bool IsIntegerBase => Array.IndexOf(Integers, Base) >= 0;

        public static ParsedType Parse(string columnType)
        {
            string text = columnType.Trim().ToLowerInvariant();
            bool unsigned = text.Contains(" unsigned", StringComparison.Ordinal);
            Match m = TypePattern().Match(text);
            string baseName = m.Groups["base"].Value;
            var args = new List<string>();
            if (m.Groups["args"].Success)
            {
                foreach (Match arg in ArgPattern().Matches(m.Groups["args"].Value))
                {
                    args.Add(arg.Value.Trim().Trim('\''));
                }
            }

            if (baseName is "integer")
            {
                baseName = "int";
            }

            if (baseName is "numeric")
            {
                baseName = "decimal";
            }

            return new ParsedType(baseName, args, unsigned);
        }
    }

    [GeneratedRegex(@"^(?<base>[a-z]+)(\((?<args>.*)\))?")]
    private static partial Regex TypePattern();

    [GeneratedRegex(@"'(?:[^']|'')*'|[^,]+")]
    private static partial Regex ArgPattern();
}
