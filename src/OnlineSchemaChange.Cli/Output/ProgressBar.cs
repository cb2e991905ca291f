using System.Globalization;
using System.Text;
using OnlineSchemaChange.Core.Migration;

namespace OnlineSchemaChange.Cli.Output;

/// <summary>
/// The one-line progress bar of an online ALTER on a terminal: rows copied of the estimate, the copy rate over the
/// last report, an ETA, changes replayed and the replay's backlog, the watched replicas' largest lag, the phase and
/// why the copy is paused. It remembers the previous report to compute the rate.
/// </summary>
internal sealed class ProgressBar(int width = 24)
{
    private OnlineAlterProgress? _previous;

    public string Format(OnlineAlterProgress progress)
    {
        ArgumentNullException.ThrowIfNull(progress);
        double fraction = progress.EstimatedRows > 0 ? Math.Min(1, (double)progress.RowsCopied / progress.EstimatedRows) : 1;
        int filled = (int)Math.Round(fraction * width);
        double? rate = null;
        if (_previous is not null && progress.Elapsed > _previous.Elapsed && progress.RowsCopied >= _previous.RowsCopied)
        {
            rate = (progress.RowsCopied - _previous.RowsCopied) / (progress.Elapsed - _previous.Elapsed).TotalSeconds;
        }

        _previous = progress;
        var line = new StringBuilder()
            .Append('[').Append('#', filled).Append('.', width - filled).Append("] ")
            .Append(CultureInfo.InvariantCulture, $"{fraction * 100,3:0}% {progress.RowsCopied:N0}/~{progress.EstimatedRows:N0} rows");
        if (rate is > 0)
        {
            line.Append(CultureInfo.InvariantCulture, $", {rate:N0} rows/s");
            long left = Math.Max(0, progress.EstimatedRows - progress.RowsCopied);
            if (progress.State == "copying" && left > 0)
            {
                line.Append(", ETA ").Append(Duration(TimeSpan.FromSeconds(left / rate.Value)));
            }
        }

        line.Append(CultureInfo.InvariantCulture, $", {progress.ChangesApplied:N0} changes replayed, backlog {progress.Backlog:N0}");
        if (progress.ReplicaLagMillis is { } lag)
        {
            line.Append(", replica lag ").Append(double.IsFinite(lag) ? string.Create(CultureInfo.InvariantCulture, $"{lag / 1000:0.0}s") : "unknown");
        }

        line.Append(CultureInfo.InvariantCulture, $", {progress.State}, {Duration(progress.Elapsed)} elapsed");
        if (progress.Throttled is not null)
        {
            line.Append(", paused: ").Append(progress.Throttled);
        }

        return line.ToString();
    }

    private static string Duration(TimeSpan span) => span.TotalHours >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalHours}h{span.Minutes:00}m")
        : span.TotalMinutes >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalMinutes}m{span.Seconds:00}s")
            : string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:0}s");
}
