namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>Compares a workload's own record of its committed writes with what the table holds.</summary>
internal static class ModelAssert
{
    /// <summary>Every expected row is there with its value, and no other row is: naming up to ten keys of each kind of difference.</summary>
    public static void Matches<TKey, TValue>(IReadOnlyDictionary<TKey, TValue> expected, IReadOnlyDictionary<TKey, TValue> actual)
        where TKey : notnull
    {
        var missing = expected.Keys.Except(actual.Keys).Take(10).ToList();
        var extra = actual.Keys.Except(expected.Keys).Take(10).ToList();
        var wrong = expected.Where(r => actual.TryGetValue(r.Key, out TValue? a) && !EqualityComparer<TValue>.Default.Equals(a, r.Value)).Select(r => r.Key).Take(10).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0 && wrong.Count == 0,
            $"missing {string.Join(",", missing)}; extra {string.Join(",", extra)}; different {string.Join(",", wrong)}");
        Assert.Equal(expected.Count, actual.Count);
    }
}
