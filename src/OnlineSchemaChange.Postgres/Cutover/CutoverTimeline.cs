using System.Diagnostics;
using System.Globalization;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Cutover;

/// <summary>
/// The time a swap holds its lock, cut into consecutive steps: each step runs from the end of the one before to its
/// own mark, so the steps never add up to more than the whole.
/// </summary>
internal sealed class CutoverTimeline
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

    /// <summary>The drain's waits as steps: until the marker committed, until the stream passed it on, until the shadow held the target.</summary>
    public void MarkDrain(PostgresDrainTrace trace)
    {
        if (trace.MarkerCommitted is long committed)
        {
            MarkAt("drain: marker committed", committed);
        }

        if (trace.MarkerReceived is long received)
        {
            MarkAt("drain: marker received by the stream", received);
        }

        if (trace.Applied != 0)
        {
            MarkAt(string.Create(CultureInfo.InvariantCulture,
                $"drain: shadow written ({trace.RowsWritten} rows; {trace.BacklogBytes} bytes of WAL behind at the lock)"), trace.Applied);
        }

        Mark("drain: returned");
    }

    /// <summary>A step that ended at <paramref name="timestamp"/>; one reported out of order is counted as ending with the one before.</summary>
    private void MarkAt(string name, long timestamp)
    {
        long end = Math.Max(_last, timestamp);
        _steps.Add(new CutoverStep(name, Stopwatch.GetElapsedTime(_last, end)));
        _last = end;
    }
}
