namespace OnlineSchemaChange.Core.Copy;

/// <summary>
/// Sizes copy chunks to a target duration instead of a fixed row count: small tables and fast servers get big chunks,
/// a busy server or wide rows get small ones, so no chunk holds its locks long. Each chunk's measured rate sets the
/// next size, smoothed, and never more than doubling or halving at once so one outlier cannot swing it.
/// </summary>
public sealed class ChunkSizer
{
    private readonly Func<TimeSpan> _target;
    private readonly int _min;
    private readonly int _max;
    private double _rowsPerSecond;

    public ChunkSizer(TimeSpan target, int initialRows = 1000, int minRows = 100, int maxRows = 100_000)
        : this(() => target, initialRows, minRows, maxRows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(target, TimeSpan.Zero);
    }

    /// <param name="target">Read at each chunk: an operator may change it while the copy runs.</param>
    public ChunkSizer(Func<TimeSpan> target, int initialRows = 1000, int minRows = 100, int maxRows = 100_000)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentOutOfRangeException.ThrowIfLessThan(minRows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRows, minRows);
        _target = target;
        _min = minRows;
        _max = maxRows;
        NextRows = Math.Clamp(initialRows, minRows, maxRows);
    }

    /// <summary>How many rows the next chunk should take.</summary>
    public int NextRows { get; private set; }

    public TimeSpan Target => _target();

    /// <summary>Feeds back what a chunk did: how many rows it copied and how long it took.</summary>
    public void Record(int rows, TimeSpan elapsed)
    {
        if (rows <= 0 || elapsed <= TimeSpan.Zero)
        {
            return;
        }

        double rate = rows / elapsed.TotalSeconds;
        _rowsPerSecond = _rowsPerSecond == 0 ? rate : (0.5 * _rowsPerSecond) + (0.5 * rate);
        double ideal = _rowsPerSecond * _target().TotalSeconds;
        double bounded = Math.Clamp(ideal, NextRows / 2.0, NextRows * 2.0);
        NextRows = (int)Math.Clamp(bounded, _min, _max);
    }
}
