namespace OnlineSchemaChange.Core.Changes;

/// <summary>
/// Where in the change stream a transaction ended: a binlog file and offset (or GTID set) on MySQL, an LSN on
/// PostgreSQL. Positions are ordered, so the cut-over can wait until the applier has passed a given one, and are
/// what a checkpoint records to resume from.
/// </summary>
public abstract class ReplicationPosition : IComparable<ReplicationPosition>
{
    public abstract int CompareTo(ReplicationPosition? other);

    /// <summary>
    /// Where a resumed run must start so that nothing not yet in the shadow as of this position is lost: the
    /// position itself, unless the stream holds changes read before it that are still to be applied (MySQL holds a
    /// prepared XA transaction's rows until its XA COMMIT, so its resume point stays at that transaction's XA PREPARE).
    /// Checkpoints record this, never a later point.
    /// </summary>
    public virtual ReplicationPosition ResumePoint => this;

    /// <summary>A stable text form, written into checkpoints and read back by the engine.</summary>
    public abstract override string ToString();

    public override bool Equals(object? obj) => obj is ReplicationPosition other && CompareTo(other) == 0;

    public abstract override int GetHashCode();

    public static bool operator ==(ReplicationPosition? left, ReplicationPosition? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(ReplicationPosition? left, ReplicationPosition? right) => !(left == right);

    public static bool operator <(ReplicationPosition left, ReplicationPosition right) => Compare(left, right) < 0;

    public static bool operator >(ReplicationPosition left, ReplicationPosition right) => Compare(left, right) > 0;

    public static bool operator <=(ReplicationPosition left, ReplicationPosition right) => Compare(left, right) <= 0;

    public static bool operator >=(ReplicationPosition left, ReplicationPosition right) => Compare(left, right) >= 0;

    private static int Compare(ReplicationPosition left, ReplicationPosition right)
    {
        ArgumentNullException.ThrowIfNull(left);
        return left.CompareTo(right);
    }
}
