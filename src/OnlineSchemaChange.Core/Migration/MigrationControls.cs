using System.Globalization;
using OnlineSchemaChange.Core.Throttle;

namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// What an operator may change while a migration runs, without stopping it (osc's control socket, as gh-ost's
/// interactive commands): pause and resume the copy, the chunk time, the replica-lag limit, --max-load and
/// --critical-load, and the postponement of the swap. Starts from the command line's values; the engine binds its
/// throttle signals when it builds them, so a change takes effect at the throttler's next check (a quarter second) or
/// the next chunk. Safe to use from any thread.
/// </summary>
public sealed class MigrationControls
{
    private readonly Lock _gate = new();
    private long _chunkTimeTicks;
    private long _maxLagTicks;
    private volatile bool _postponed;
    private IReadOnlyList<ThresholdSignal> _lag = [];
    private ThrottleSignalSet? _load;
    private ThrottleSignalSet? _critical;
    private Func<string, string, IReadOnlyList<IThrottleSignal>>? _loadFactory;

    public MigrationControls(OnlineAlterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _chunkTimeTicks = options.ChunkTime.Ticks;
        _maxLagTicks = options.MaxLag.Ticks;
        MaxLoad = options.MaxLoad;
        CriticalLoad = options.CriticalLoad;
    }

    /// <summary>The operator's own brake, one of the throttler's signals.</summary>
    public OperatorSignal Throttle { get; } = new();

    public TimeSpan ChunkTime
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _chunkTimeTicks));
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero);
            Interlocked.Exchange(ref _chunkTimeTicks, value.Ticks);
        }
    }

    public TimeSpan MaxLag
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _maxLagTicks));
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero);
            lock (_gate)
            {
                Interlocked.Exchange(ref _maxLagTicks, value.Ticks);
                foreach (ThresholdSignal signal in _lag)
                {
                    signal.Limit = value.TotalMilliseconds;
                }
            }
        }
    }

    /// <summary>Holds the swap, as the postpone flag file does, until <see cref="CutoverPostponed"/> is set false again.</summary>
    public bool CutoverPostponed
    {
        get => _postponed;
        set => _postponed = value;
    }

    /// <summary>
    /// The most copy workers an operator can raise a run to with `workers=N` when it started with fewer: the copy
    /// runs this many worker tasks and parks those beyond the count, which costs a poll each and holds no connection.
    /// </summary>
    public const int MostWorkers = 16;

    private int _workers;
    private int _startedWorkers;
    private int _mostWorkers;

    /// <summary>How many copy workers may copy now: all that the copy started with, unless the operator changed it.</summary>
    public int Workers => Volatile.Read(ref _workers);

    /// <summary>The worker tasks a copy starting with <paramref name="started"/> runs: room to rise to <see cref="MostWorkers"/> unless it cannot run in parallel.</summary>
    public static int CopyTasks(int started, bool canGrow) => canGrow ? Math.Max(started, MostWorkers) : started;

    /// <summary>
    /// Called as the copy starts with <paramref name="started"/> workers copying of <paramref name="tasks"/> it runs;
    /// returns what they read to know whether they may copy.
    /// </summary>
    public Func<int> BindCopy(int started, int tasks)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(started, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tasks, started);
        lock (_gate)
        {
            _startedWorkers = started;
            _mostWorkers = tasks;
            _workers = started;
        }

        return () => Workers;
    }

    /// <summary>Lets <paramref name="count"/> of the copy's workers copy, between one and the tasks it runs.</summary>
    public void SetWorkers(int count)
    {
        lock (_gate)
        {
            if (_startedWorkers == 0)
            {
                throw new OscException("The copy is not running: there are no workers to change.", "Change workers while the run is copying (status shows the state).");
            }

            if (count < 1 || count > _mostWorkers)
            {
                throw new OscException($"workers takes 1 to {_mostWorkers} on this copy, not {count}.",
                    _mostWorkers == 1
                        ? "This copy runs one worker only: the run's notes say why."
                        : $"For more than {_mostWorkers}, stop the run and resume it with --workers (Ctrl-C keeps its work for --resume).");
            }

            Volatile.Write(ref _workers, count);
        }
    }

    /// <summary>The --max-load now in force (null: none).</summary>
    public string? MaxLoad { get; private set; }

    /// <summary>The --critical-load now in force (null: none).</summary>
    public string? CriticalLoad { get; private set; }

    /// <summary>Called by the throttler's builder: the signals a later change acts on, and how to build load signals from a spec.</summary>
    internal void Bind(IReadOnlyList<ThresholdSignal> lag, ThrottleSignalSet load, ThrottleSignalSet critical, Func<string, string, IReadOnlyList<IThrottleSignal>> loadFactory)
    {
        lock (_gate)
        {
            _lag = lag;
            _load = load;
            _critical = critical;
            _loadFactory = loadFactory;
            foreach (ThresholdSignal signal in lag)
            {
                signal.Limit = MaxLag.TotalMilliseconds;
            }
        }
    }

    /// <summary>
    /// Replaces --max-load (or, with <paramref name="critical"/>, --critical-load) with <paramref name="spec"/>; empty
    /// removes it. Each new signal is measured once first: a name the server does not know would hold the copy (or
    /// never abort) for the rest of the run, so it is refused instead, and the limits in force stay.
    /// </summary>
    public async Task SetLoadAsync(string spec, bool critical, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string option = critical ? "critical-load" : "max-load";
        ThrottleSignalSet target;
        Func<string, string, IReadOnlyList<IThrottleSignal>> factory;
        lock (_gate)
        {
            target = (critical ? _critical : _load) ?? throw new OscException($"The migration has not started its throttler yet; {option} cannot be changed now.", "Try again in a moment.");
            factory = _loadFactory!;
        }

        IReadOnlyList<IThrottleSignal> signals = spec.Length == 0 ? [] : factory(spec, option);
        foreach (IThrottleSignal signal in signals)
        {
            await signal.CheckAsync(cancellationToken);
            if (signal is ThresholdSignal { LastValue: null })
            {
                throw new OscException($"{option}: {signal.Name} cannot be measured on this server.", "Use a name the server reports (SHOW GLOBAL STATUS; PostgreSQL: active_sessions).");
            }
        }

        lock (_gate)
        {
            target.Signals = signals;
            if (critical)
            {
                CriticalLoad = spec.Length == 0 ? null : spec;
            }
            else
            {
                MaxLoad = spec.Length == 0 ? null : spec;
            }
        }
    }

    /// <summary>The settings in force, as `name=value` pairs the control socket's commands accept back.</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"workers={(_startedWorkers == 0 ? "-" : Workers.ToString(CultureInfo.InvariantCulture))} chunk-time-millis={ChunkTime.TotalMilliseconds:0} max-lag-millis={MaxLag.TotalMilliseconds:0} max-load={MaxLoad ?? ""} critical-load={CriticalLoad ?? ""} "
        + $"throttled-by-operator={(Throttle.On ? "yes" : "no")} cut-over-postponed={(CutoverPostponed ? "yes" : "no")}");
}
