using System.Globalization;

namespace OnlineSchemaChange.Core.Copy;

/// <summary>A single-column key's lowest and highest values, and the server's estimate of the table's rows.</summary>
public sealed record KeySpan(object Min, object Max, long EstimatedRows)
{
    /// <summary>
    /// An integer key at least half dense: the span of values at most twice the estimated rows. A unique integer key
    /// holds at most one row per value, so a range of n values then holds at most n rows and, on average, at least half.
    /// </summary>
    public bool IsDenseInteger => IsInteger(Min) && IsInteger(Max) && EstimatedRows >= 1 && Width >= 1 && Width <= 2m * EstimatedRows;

    /// <summary>How many key values the span covers, ends included (integer keys only).</summary>
    public decimal Width => ToDecimal(Max) - ToDecimal(Min) + 1;

    internal static bool IsInteger(object? value) => value is sbyte or byte or short or ushort or int or uint or long or ulong;

    internal static decimal ToDecimal(object value) => Convert.ToDecimal(value, CultureInfo.InvariantCulture);

    /// <summary>The value in the key's own type, as comparisons with the key's column expect.</summary>
    internal object InKeyType(decimal value) => Convert.ChangeType(value, Min.GetType(), CultureInfo.InvariantCulture);
}

/// <summary>A copy source that can tell the span of its single-column key, so that chunks can be cut by arithmetic.</summary>
public interface IKeySpanSource
{
    /// <summary>Null when the key has several columns, the table is empty, or the server has no row estimate yet.</summary>
    Task<KeySpan?> ReadKeySpanAsync(CancellationToken cancellationToken);
}
