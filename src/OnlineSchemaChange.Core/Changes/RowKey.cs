namespace OnlineSchemaChange.Core.Changes;

/// <summary>
/// A row's primary key values, compared by value: the identity under which the applier de-duplicates changes.
/// byte[] values (binary keys) compare by content.
/// </summary>
public sealed class RowKey : IEquatable<RowKey>
{
    private readonly object?[] _values;
    private readonly int _hash;

    public RowKey(params object?[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _values = values;
        var hash = new HashCode();
        foreach (object? value in values)
        {
            hash.Add(value is byte[] bytes ? BytesHash(bytes) : value?.GetHashCode() ?? 0);
        }

        _hash = hash.ToHashCode();
    }

    public IReadOnlyList<object?> Values => _values;

    /// <summary>
    /// True when every value is an integer or a decimal: there the server's key order and
    /// <see cref="RowKeyComparer"/>'s agree exactly. Text under a collation, binary and temporal values may not.
    /// </summary>
    /// <remarks>Asked for every replayed change during a fresh run's copy: a plain loop.</remarks>
    public bool IsOrderedExactly
    {
        get
        {
            foreach (object? value in _values)
            {
                if (value is not (sbyte or byte or short or ushort or int or uint or long or ulong or decimal))
                {
                    return false;
                }
            }

            return true;
        }
    }

    public bool Equals(RowKey? other)
    {
        if (other is null || other._hash != _hash || other._values.Length != _values.Length)
        {
            return false;
        }

        for (int i = 0; i < _values.Length; i++)
        {
            bool same = (_values[i], other._values[i]) switch
            {
                (byte[] a, byte[] b) => a.AsSpan().SequenceEqual(b),
                var (a, b) => Equals(a, b),
            };
            if (!same)
            {
                return false;
            }
        }

        return true;
    }

    public override bool Equals(object? obj) => Equals(obj as RowKey);

    public override int GetHashCode() => _hash;

    public override string ToString() => "(" + string.Join(", ", _values.Select(v => v is byte[] b ? Convert.ToHexString(b) : v?.ToString() ?? "NULL")) + ")";

    private static int BytesHash(byte[] bytes)
    {
        var hash = new HashCode();
        hash.AddBytes(bytes);
        return hash.ToHashCode();
    }
}
