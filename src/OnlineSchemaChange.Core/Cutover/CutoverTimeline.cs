using System.Diagnostics;

namespace OnlineSchemaChange.Core.Cutover;

/// <summary>
/// The time a swap holds its lock, cut into consecutive steps: each step runs from the end of the one before to its
/// own mark, so the steps never add up to more than the whole. Started when the lock is granted.
/// </summary>
public sealed class CutoverTimeline
{
    private readonly List<CutoverStep> _steps = [];
    private readonly long _start = Stopwatch.GetTimestamp();
    private long _last;

    public CutoverTimeline() => _last = _start;

    public long Start => _start;

    public IReadOnlyList<CutoverStep> Steps => _steps;

    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_start);

    /// <summary>Ends the step <paramref name="name"/> now.</summary>
    public void Mark(string name) => MarkAt(name, Stopwatch.GetTimestamp());

    /// <summary>A step that ended at <paramref name="timestamp"/>; one reported out of order is counted as ending with the one before.</summary>
    public void MarkAt(string name, long timestamp)
    {
        long end = Math.Max(_last, timestamp);
        _steps.Add(new CutoverStep(name, Stopwatch.GetElapsedTime(_last, end)));
        _last = end;
    }
}
