namespace OnlineSchemaChange.Core.Throttle;

/// <summary>
/// One reason to pause the copy: replica lag, server load, an operator's flag file. Returns why it asks for a pause,
/// or null when it does not. A signal that cannot be checked (a replica went away) should say so as a reason:
/// copying blind is what a throttler exists to prevent.
/// </summary>
public interface IThrottleSignal
{
    string Name { get; }

    ValueTask<string?> CheckAsync(CancellationToken cancellationToken);
}

/// <summary>Pauses while a file exists (gh-ost's --throttle-flag-file): an operator's manual brake.</summary>
public sealed class FlagFileSignal(string path) : IThrottleSignal
{
    public string Name => "flag file";

    public ValueTask<string?> CheckAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(File.Exists(path) ? $"flag file {path} exists" : null);
}

/// <summary>Pauses while a measured value is above its limit: replica lag in milliseconds, Threads_running, ...</summary>
public sealed class ThresholdSignal(string name, double limit, Func<CancellationToken, ValueTask<double>> measure, string unit = "") : IThrottleSignal
{
    private double _last = double.NaN;
    private double _limit = limit;

    public string Name => name;

    /// <summary>The value above which it asks for a pause; an operator may change it while the migration runs.</summary>
    public double Limit
    {
        get => Volatile.Read(ref _limit);
        set => Volatile.Write(ref _limit, value);
    }

    /// <summary>The value the last check measured (infinity: known to be unbounded, such as a heartbeat not seen yet); null before any, or when that check failed.</summary>
    public double? LastValue => Volatile.Read(ref _last) is var last && double.IsNaN(last) ? null : last;

    public async ValueTask<string?> CheckAsync(CancellationToken cancellationToken)
    {
        double value;
        try
        {
            value = await measure(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Volatile.Write(ref _last, double.NaN);
            return $"{name} cannot be measured: {e.Message}";
        }

        Volatile.Write(ref _last, value);
        double above = Limit;
        return value > above ? $"{name} is {value:0.##}{unit}, above {above:0.##}{unit}" : null;
    }
}

/// <summary>
/// A group of signals an operator may replace while the migration runs (--max-load, --critical-load set anew through
/// the control socket): asks for a pause with the first reason any of its current signals gives.
/// </summary>
public sealed class ThrottleSignalSet(string name, IReadOnlyList<IThrottleSignal> initial) : IThrottleSignal
{
    private IReadOnlyList<IThrottleSignal> _signals = initial;

    public string Name => name;

    public IReadOnlyList<IThrottleSignal> Signals
    {
        get => Volatile.Read(ref _signals);
        set => Volatile.Write(ref _signals, value);
    }

    public async ValueTask<string?> CheckAsync(CancellationToken cancellationToken)
    {
        // Each is measured, as the throttler measures its own, so the figures stay current.
        string? reason = null;
        foreach (IThrottleSignal signal in Signals)
        {
            reason ??= await signal.CheckAsync(cancellationToken);
        }

        return reason;
    }
}

/// <summary>Pauses while an operator asks it to (the control socket's throttle command).</summary>
public sealed class OperatorSignal : IThrottleSignal
{
    private volatile bool _on;

    public string Name => "operator";

    public bool On
    {
        get => _on;
        set => _on = value;
    }

    public ValueTask<string?> CheckAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(_on ? "throttled by the operator (control socket)" : null);
}
