using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Tests.Core.Pipeline;

/// <summary>A position that is just a number, for tests of engine-neutral code.
/// <paramref name="resumeAt"/>, when given, is the resume point (a stream holding changes read before it).</summary>
internal sealed class TestPosition(long value, long? resumeAt = null) : ReplicationPosition
{
    public long Value { get; } = value;

    public override ReplicationPosition ResumePoint => resumeAt is { } r ? new TestPosition(r) : this;

    public override int CompareTo(ReplicationPosition? other) => other is TestPosition p ? Value.CompareTo(p.Value) : 1;

    public override int GetHashCode() => Value.GetHashCode();

    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
