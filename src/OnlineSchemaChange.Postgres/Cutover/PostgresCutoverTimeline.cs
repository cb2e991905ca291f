using System.Globalization;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Cutover;

/// <summary>PostgreSQL's steps of a swap's hold.</summary>
internal static class PostgresCutoverTimeline
{
    /// <summary>The drain's waits as steps: until the marker committed, until the stream passed it on, until the shadow held the target.</summary>
    public static void MarkDrain(this CutoverTimeline timeline, PostgresDrainTrace trace)
    {
        if (trace.MarkerCommitted is long committed)
        {
            timeline.MarkAt("drain: marker committed", committed);
        }

        if (trace.MarkerReceived is long received)
        {
            timeline.MarkAt("drain: marker received by the stream", received);
        }

        if (trace.Applied != 0)
        {
            timeline.MarkAt(string.Create(CultureInfo.InvariantCulture,
                $"drain: shadow written ({trace.RowsWritten} rows; {trace.BacklogBytes} bytes of WAL behind at the lock)"), trace.Applied);
        }

        timeline.Mark("drain: returned");
    }
}
