namespace OnlineSchemaChange.Postgres.Replication;

/// <summary>
/// What one drain waited for, as <see cref="System.Diagnostics.Stopwatch"/> timestamps, so the cut-over can say where
/// its lock time went: the marker's commit (null when the shadow was there already and no marker was needed), the
/// stream passing the marker on (null when a commit past the target arrived first), the applier reaching the target.
/// </summary>
/// <param name="BacklogBytes">WAL between what the shadow held when the drain began and the target.</param>
/// <param name="RowsWritten">Rows the applier wrote to the shadow while the drain waited.</param>
public sealed record PostgresDrainTrace(long? MarkerCommitted, long? MarkerReceived, long Applied, ulong BacklogBytes, long RowsWritten)
{
    /// <summary>For a drain that does not say: everything was there at once.</summary>
    public static PostgresDrainTrace Untraced { get; } = new(null, null, 0, 0, 0);
}
