using System.Globalization;
using System.Text.RegularExpressions;

namespace OnlineSchemaChange.Postgres.Plan;

/// <summary>
/// Whether a type change keeps every value the application writes and reads today, judged on format_type() strings
/// such as "integer", "character varying(20)", "numeric(10,2)".
/// </summary>
public static partial class PostgresTypeCompatibility
{
    private static readonly string[] Integers = ["smallint", "integer", "bigint"];

    public static bool IsWidening(string oldType, string newType)
    {
        ArgumentNullException.ThrowIfNull(oldType);
        ArgumentNullException.ThrowIfNull(newType);
        (string fromBase, int[] fromArgs) = Parse(oldType);
        (string toBase, int[] toArgs) = Parse(newType);
        if (oldType == newType)
        {
            return true;
        }

        int fi = Array.IndexOf(Integers, fromBase), ti = Array.IndexOf(Integers, toBase);
        if (fi >= 0 && ti >= 0)
        {
            return ti >= fi;
        }

        if (fi >= 0 && toBase == "numeric")
        {
            return toArgs.Length == 0 || toArgs[0] - Arg(toArgs, 1) >= new[] { 5, 10, 19 }[fi];
        }

        if (fromBase is "character varying" or "character" && toBase is "text")
        {
            return true;
        }

        if (fromBase is "character varying" && toBase is "character varying")
        {
            return toArgs.Length == 0 || (fromArgs.Length > 0 && toArgs[0] >= fromArgs[0]);
        }

        if (fromBase == "numeric" && toBase == "numeric")
        {
            return toArgs.Length == 0 || (fromArgs.Length > 0 && Arg(toArgs, 1) >= Arg(fromArgs, 1) && toArgs[0] - Arg(toArgs, 1) >= fromArgs[0] - Arg(fromArgs, 1));
        }

        if (fromBase == "real" && toBase == "double precision")
        {
            return true;
        }

        if (fromBase == toBase && fromBase.StartsWith("time", StringComparison.Ordinal))
        {
            return Arg(toArgs, 0, 6) >= Arg(fromArgs, 0, 6);
        }

        return fromBase == "date" && toBase.StartsWith("timestamp", StringComparison.Ordinal) && !toBase.Contains("with time zone", StringComparison.Ordinal);
    }

    private static int Arg(int[] args, int index, int fallback = 0) => index < args.Length ? args[index] : fallback;

    private static (string Base, int[] Args) Parse(string type)
    {
        Match m = TypePattern().Match(type.Trim().ToLowerInvariant());
        string baseName = (m.Groups["head"].Value + m.Groups["tail"].Value).Trim();
        int[] args = m.Groups["args"].Success
            ? m.Groups["args"].Value.Split(',').Select(a => int.Parse(a.Trim(), CultureInfo.InvariantCulture)).ToArray()
            : [];
        return (baseName, args);
    }

    // "timestamp(3) with time zone" keeps its modifier in the middle.
    [GeneratedRegex(@"^(?<head>[a-z ]+?)(\((?<args>[0-9, ]+)\))?(?<tail>( [a-z ]+)?)$")]
    private static partial Regex TypePattern();
}
