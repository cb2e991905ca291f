namespace OnlineSchemaChange.Core.Changes;

/// <summary>
/// Orders keys value by value the way an index does for the common key types (NULL first, numbers by value, byte
/// arrays by bytes, text ordinally), so writers can touch rows in key order: the order the copier locks them in,
/// which keeps the two from deadlocking each other over and over.
/// </summary>
public sealed class RowKeyComparer : IComparer<RowKey>
{
    public static RowKeyComparer Instance { get; } = new();

    public int Compare(RowKey? x, RowKey? y)
    {
        if (x is null || y is null)
        {
            return x is null ? (y is null ? 0 : -1) : 1;
        }

        for (int i = 0; i < Math.Min(x.Values.Count, y.Values.Count); i++)
        {
            int c = CompareValues(x.Values[i], y.Values[i]);
            if (c != 0)
            {
                return c;
            }
        }

        return x.Values.Count.CompareTo(y.Values.Count);
    }

    private static int CompareValues(object? a, object? b) => (a, b) switch
    {
        (null, null) => 0,
        (null, _) => -1,
        (_, null) => 1,
        (byte[] p, byte[] q) => p.AsSpan().SequenceCompareTo(q),
        (string p, string q) => string.CompareOrdinal(p, q),
        _ when IsNumber(a) && IsNumber(b) => Convert.ToDecimal(a, System.Globalization.CultureInfo.InvariantCulture)
            .CompareTo(Convert.ToDecimal(b, System.Globalization.CultureInfo.InvariantCulture)),
        (IComparable p, _) when a.GetType() == b.GetType() => p.CompareTo(b),
        _ => string.CompareOrdinal(a.ToString(), b.ToString()),
    };

    private static bool IsNumber(object value) => value is sbyte or byte or short or ushort or int or uint or long or ulong or decimal;
}
