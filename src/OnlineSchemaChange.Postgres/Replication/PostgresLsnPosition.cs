using NpgsqlTypes;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.Postgres.Replication;

/// <summary>A WAL position (log sequence number): the end of a source transaction's commit, or a marker we emitted.</summary>
public sealed class PostgresLsnPosition(NpgsqlLogSequenceNumber lsn) : ReplicationPosition
{
    public NpgsqlLogSequenceNumber Lsn { get; } = lsn;

    public override int CompareTo(ReplicationPosition? other) => other is PostgresLsnPosition p ? Lsn.CompareTo(p.Lsn) : 1;

    public override int GetHashCode() => Lsn.GetHashCode();

    public override string ToString() => Lsn.ToString();

    public static PostgresLsnPosition Parse(string text) => new(NpgsqlLogSequenceNumber.Parse(text));
}
