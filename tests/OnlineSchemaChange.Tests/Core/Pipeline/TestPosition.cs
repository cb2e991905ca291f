using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

/// <summary>A position that is just a number, for tests of engine-neutral code.</summary>
internal sealed class TestPosition(long value) : ReplicationPosition
{
    public long Value { get; } = value;

    public override int CompareTo(ReplicationPosition? other) => other is TestPosition p ? Value.CompareTo(p.Value) : 1;

    public override int GetHashCode() => Value.GetHashCode();

    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
