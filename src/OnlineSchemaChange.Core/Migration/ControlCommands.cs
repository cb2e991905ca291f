using System.Globalization;

namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// The control socket's commands, one line each (`echo throttle | nc -U &lt;socket&gt;`), answered with one or more
/// lines that begin "ok" or "error". Engine-neutral: they act on <see cref="MigrationControls"/>, and on what the
/// command gives for the status and for stopping the run.
/// </summary>
public sealed class ControlCommands(MigrationControls controls, Func<string> status, Action abort, string? postponeFlagFile)
{
    public const string Help =
        """
        status                        where the migration is, and the settings in force
        throttle | no-throttle        pause the copy, or stop pausing it for the operator (other limits still apply)
        workers=N                     copy with N of the workers the copy started with (1 or more)
        chunk-time-millis=N           target time per copy chunk
        max-lag-millis=N              pause while a replica lags more
        max-load=VAR=N[,VAR=N]        pause while a status variable exceeds its limit (empty: none)
        critical-load=VAR=N[,VAR=N]   abort when a status variable exceeds its limit (empty: none)
        postpone-cut-over             hold the swap once the table is ready, until unpostpone
        unpostpone                    let the swap go (also removes --postpone-cut-over-flag-file)
        abort                         stop the migration as Ctrl-C does: the original untouched, the work kept for --resume
        help                          this list
        """;

    /// <summary>Runs one command line; never throws for bad input, which gets an "error: ..." answer instead.</summary>
    public async Task<string> ExecuteAsync(string line, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(line);
        string command = line.Trim();
        int equals = command.IndexOf('=', StringComparison.Ordinal);
        string name = (equals < 0 ? command : command[..equals]).Trim().ToLowerInvariant();
        string? value = equals < 0 ? null : command[(equals + 1)..].Trim();
        try
        {
            return (name, value) switch
            {
                ("status", null) => "ok\n" + status() + "\n" + controls.Describe(),
                ("help", null) => "ok\n" + Help,
                ("throttle", null) => Set(() => controls.Throttle.On = true, "the copy is paused until no-throttle"),
                ("no-throttle", null) => Set(() => controls.Throttle.On = false, "the operator no longer pauses the copy"),
                ("workers", null) => "ok " + controls.Workers.ToString(CultureInfo.InvariantCulture),
                ("workers", _) => Set(() => controls.SetWorkers(Count(name, value)), $"workers={value}"),
                ("chunk-time-millis", null) => Show(controls.ChunkTime.TotalMilliseconds),
                ("chunk-time-millis", _) => Set(() => controls.ChunkTime = Millis(name, value), $"chunk-time-millis={value}"),
                ("max-lag-millis", null) => Show(controls.MaxLag.TotalMilliseconds),
                ("max-lag-millis", _) => Set(() => controls.MaxLag = Millis(name, value), $"max-lag-millis={value}"),
                ("max-load", null) => "ok max-load=" + controls.MaxLoad,
                ("max-load", _) => await SetLoadAsync(value, critical: false, cancellationToken),
                ("critical-load", null) => "ok critical-load=" + controls.CriticalLoad,
                ("critical-load", _) => await SetLoadAsync(value, critical: true, cancellationToken),
                ("postpone-cut-over", null) => Set(() => controls.CutoverPostponed = true, "the swap waits for unpostpone"),
                ("unpostpone", null) => Unpostpone(),
                ("abort", null) => Set(abort, "stopping: the original stays untouched, the work is kept for --resume"),
                ("", _) => "error: empty command; try help",
                _ when value is not null && name is "status" or "help" or "throttle" or "no-throttle" or "postpone-cut-over" or "unpostpone" or "abort"
                    => $"error: {name} takes no value",
                _ => $"error: unknown command '{name}'; try help",
            };
        }
        catch (OscException e)
        {
            return $"error: {e.Message}" + (e.Hint is null ? "" : $" fix: {e.Hint}");
        }
    }

    private static string Set(Action change, string what)
    {
        change();
        return "ok " + what;
    }

    private static string Show(double millis) => string.Create(CultureInfo.InvariantCulture, $"ok {millis:0}");

    private static TimeSpan Millis(string name, string? value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int millis) && millis > 0
            ? TimeSpan.FromMilliseconds(millis)
            : throw new OscException($"{name} needs a whole number of milliseconds above 0, not '{value}'.", $"For example {name}=500.");

    private static int Count(string name, string? value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int count)
            ? count
            : throw new OscException($"{name} needs a whole number, not '{value}'.", $"For example {name}=1.");

    private async Task<string> SetLoadAsync(string? spec, bool critical, CancellationToken cancellationToken)
    {
        await controls.SetLoadAsync(spec ?? "", critical, cancellationToken);
        string option = critical ? "critical-load" : "max-load";
        return string.IsNullOrEmpty(spec) ? $"ok {option} removed" : $"ok {option}={spec}";
    }

    private string Unpostpone()
    {
        controls.CutoverPostponed = false;
        if (postponeFlagFile is not null && File.Exists(postponeFlagFile))
        {
            File.Delete(postponeFlagFile);
            return $"ok the swap may go; removed {postponeFlagFile}";
        }

        return "ok the swap may go";
    }
}
