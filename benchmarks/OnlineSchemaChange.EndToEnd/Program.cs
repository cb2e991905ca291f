using System.Diagnostics;
using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.EndToEnd;
using OnlineSchemaChange.LocalServers;

// The same column change three ways on the same sysbench table under the same sysbench write load: the server's own
// ALTER (the baseline), pt-online-schema-change, and osc. See docs/benchmarks.md.
int rows = 1_000_000;
string? oscPath = null;
string engine = "mysql";
var only = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
var oscExtra = new List<string>();
var serverExtra = new List<string>();
string bufferPool = "512M";
// The test servers' 48 MB redo log is cycled several times by a 1,000,000-row copy; each cycle's flushing stalls
// commits. A server that takes big ALTERs is given room: the same for every method.
string redoLog = "1G";
const string DefaultChange = "MODIFY k BIGINT NOT NULL DEFAULT 0";
string change = DefaultChange;
// The throwaway servers trade durability for speed (no fsync, no flush at commit); --durable runs them as production
// does, for figures a DBA can hold against a real server.
bool durable = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--rows" when i + 1 < args.Length:
            rows = int.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--osc" when i + 1 < args.Length:
            oscPath = args[++i];
            break;
        case "--engine" when i + 1 < args.Length && args[i + 1] is "mysql" or "postgres" or "all":
            engine = args[++i];
            break;
        case "--methods" when i + 1 < args.Length:
            only.UnionWith(args[++i].Split(','));
            break;
        case "--buffer-pool" when i + 1 < args.Length:
            bufferPool = args[++i];
            break;
        case "--redo-log" when i + 1 < args.Length:
            redoLog = args[++i];
            break;
        case "--osc-arg" when i + 1 < args.Length:
            oscExtra.Add(args[++i]);
            break;
        case "--mariadb-arg" when i + 1 < args.Length:
            serverExtra.Add(args[++i]);
            break;
        case "--change" when i + 1 < args.Length:
            change = args[++i];
            break;
        case "--durable":
            durable = true;
            break;
        default:
            Console.Error.WriteLine("Usage: OnlineSchemaChange.EndToEnd [--engine mysql|postgres|all (default mysql)] [--rows N (default 1000000)] [--osc path/to/osc.dll] [--methods native,pt,osc (PostgreSQL: native,osc,osc-w1; osc-rebuild, osc with --native off, on request)] [--osc-arg ARG]... [--mariadb-arg ARG]... [--buffer-pool 512M] [--redo-log 1G] [--change \"MySQL ALTER clause\" (default: MODIFY k BIGINT ...; another is not checked beyond the tools' exit codes)] [--durable (fsync and flush at every commit, as in production)]");
            return 2;
    }
}

string[] needed = engine == "postgres" ? [] : ["sysbench", "pt-online-schema-change", "mariadbd"];
string[] missing = [.. needed.Where(t => !Tools.OnPath(t))];
if (missing.Length > 0)
{
    Console.Error.WriteLine($"Missing: {string.Join(", ", missing)}. Install them with tools/setup "
                            + "(or: sudo apt-get install sysbench percona-toolkit mariadb-server).");
    return 2;
}

oscPath ??= Tools.LocateOsc();
if (oscPath is null || !File.Exists(oscPath))
{
    Console.Error.WriteLine("osc.dll not found: run tools/publish (the precompiled build, the one to measure), or build it (dotnet build -c Release benchmarks/OnlineSchemaChange.EndToEnd), or pass --osc.");
    return 2;
}

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
int postgresExit = 0;
if (engine is "postgres" or "all")
{
    postgresExit = await PostgresBenchmark.RunAsync(rows, oscPath, only, oscExtra, change == DefaultChange ? null : change, durable, cancel.Token);
    if (engine == "postgres")
    {
        return postgresExit;
    }
}

var margin = TimeSpan.FromSeconds(5);

Console.WriteLine($"Starting a throwaway MariaDB on loopback; osc is {oscPath}");
await using LocalMariaDb maria = await LocalMariaDb.StartAsync(
    new MariaDbOptions { BufferPoolSize = bufferPool, Durable = durable, ExtraArguments = [$"--innodb-log-file-size={redoLog}", .. serverExtra] }, cancel.Token);
Console.WriteLine($"  {maria}, innodb_buffer_pool_size={bufferPool}, innodb_log_file_size={redoLog}{(durable ? ", durable (innodb_flush_log_at_trx_commit=1, sync_binlog=1)" : "")}{string.Concat(serverExtra.Select(a => " " + a))}");
// The server is one process (threads), so its CPU time during an ALTER shows what the method cost it.
int serverPid = await SbTest.ServerPidAsync(maria.ConnectionString, cancel.Token);

var methods = new (string Key, string Name, Func<CancellationToken, Task<MethodOutcome>> Run)[]
{
    ("native", "native `ALGORITHM=COPY`", ct => Methods.NativeAsync(maria.ConnectionString, change, ct)),
    ("pt", "pt-online-schema-change", ct => Methods.ExternalAsync("pt-online-schema-change",
    [
        "--alter", change, "--execute", "--no-check-replication-filters", "--recursion-method=none",
        "--no-check-unique-key-change", $"h=127.0.0.1,P={maria.Port},u=osc,p=osc,D=sbtest,t=sbtest1",
    ], ct)),
    ("osc", "`osc alter --execute`", ct => Methods.ExternalAsync("dotnet",
    [
        oscPath, "alter", $"mysql://osc:osc@127.0.0.1:{maria.Port}/sbtest", "--table", "sbtest1", "--alter", change, "--execute", "--json", .. oscExtra,
    ], ct)),
    // The same, never taking the catalog-only path: what the rebuild costs where the server could have edited its catalog.
    ("osc-rebuild", "`osc alter --execute --native off`", ct => Methods.ExternalAsync("dotnet",
    [
        oscPath, "alter", $"mysql://osc:osc@127.0.0.1:{maria.Port}/sbtest", "--table", "sbtest1", "--alter", change, "--execute", "--json", "--native", "off", .. oscExtra,
    ], ct)),
}.Where(m => only.Count == 0 ? m.Key != "osc-rebuild" : only.Contains(m.Key)).ToArray();

var results = new List<(string Name, MethodOutcome Outcome, LoadSummary Load, TimeSpan LongestWrite)>();
var timelines = new List<string>();
foreach (var (_, name, run) in methods)
{
    Console.WriteLine();
    Console.WriteLine($"== {name}: filling sbtest.sbtest1 with {rows:N0} rows");
    var fill = Stopwatch.StartNew();
    await SbTest.RecreateAsync(maria.ConnectionString, rows, cancel.Token);
    Console.WriteLine($"   filled in {fill.Elapsed.TotalSeconds:0.0} s; sysbench starts, the ALTER follows in {margin.TotalSeconds:0} s");

    var clock = Stopwatch.StartNew();
    MethodOutcome outcome;
    TimeSpan alterStart, alterEnd, longestWrite;
    SysbenchLoad load = SysbenchLoad.Start(maria.Port, rows, clock);
    await using (load)
    {
        // A no-op UPDATE still takes the table's metadata lock and the row's lock, as any write does.
        await using WriteProbe probe = await WriteProbe.StartAsync(
            new MySqlConnection(new MySqlConnectionStringBuilder(maria.ConnectionString) { Database = "sbtest" }.ConnectionString),
            "UPDATE sbtest1 SET c = c WHERE id = @id", rows, cancel.Token);
        await Task.Delay(margin, cancel.Token);
        alterStart = clock.Elapsed;
        DateTime alterStartUtc = DateTime.UtcNow;
        TimeSpan? serverCpuBefore = CpuTime.Of(serverPid);
        outcome = await run(cancel.Token);
        alterEnd = clock.Elapsed;
        longestWrite = probe.Longest(alterStartUtc, DateTime.UtcNow);
        outcome = outcome with { ServerCpu = CpuTime.Of(serverPid) - serverCpuBefore };
        await Task.Delay(margin, cancel.Token);
        if (load.Exited)
        {
            outcome = outcome with { Ok = false, Detail = "sysbench stopped before the end of the run" };
        }
    }

    if (outcome.Ok && change == DefaultChange && await SbTest.ColumnTypeAsync(maria.ConnectionString, cancel.Token) is var type && type != "bigint")
    {
        outcome = outcome with { Ok = false, Detail = $"k is {type} afterwards, not bigint" };
    }

    LoadSummary summary = LoadSummary.Of(load.Seconds, alterStart, alterEnd);
    results.Add((name, outcome, summary, longestWrite));
    timelines.Add($"{name}: " + string.Join(" ", load.Seconds.Select(s =>
        (s.Arrived > alterStart && s.Arrived - TimeSpan.FromSeconds(1) < alterEnd ? "*" : "") + $"{s.Tps:0}/{s.P99Millis:0}"
        + outcome.PhasesDuring(s.Arrived - TimeSpan.FromSeconds(1) - alterStart, s.Arrived - alterStart, alterEnd - alterStart))));
    Console.WriteLine($"   {(outcome.Ok ? "done" : "FAILED")} in {outcome.Elapsed.TotalSeconds:0.0} s{(outcome.Detail is null ? "" : ": " + outcome.Detail)}");
}

double native = results[0].Outcome.Elapsed.TotalSeconds;
Console.WriteLine();
Console.WriteLine($"sbtest1, {rows:N0} rows, `{change}`; load: sysbench oltp_write_only --threads=4 --rate=300 from {margin.TotalSeconds:0} s before to {margin.TotalSeconds:0} s after each ALTER.");
Console.WriteLine();
Console.WriteLine("| Method | ALTER time | vs native | worst 1-s p99 before | worst 1-s p99 during | failed tx (err) | reconnects | longest 0-tps run | longest probe write | writes held | peak RSS |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var (name, o, l, longest) in results)
{
    string held = o.WritesHeld is { } h ? $"{h.TotalMilliseconds:N0} ms" : "—";
    string rss = o.PeakRssBytes is { } b ? $"{b / (1024.0 * 1024):N0} MB" : "—";
    string status = o.Ok ? "" : " (FAILED)";
    Console.WriteLine($"| {name}{status} | {o.Elapsed.TotalSeconds:0.0} s | {o.Elapsed.TotalSeconds / native:0.0} | {l.P99Before:N0} ms | {l.P99During:N0} ms | "
                      + $"{l.Errors:N0} | {l.Reconnects:N0} | {l.LongestStallSeconds} s | {longest.TotalMilliseconds:N0} ms | {held} | {rss} |");
}

Console.WriteLine();
Console.WriteLine("longest probe write: the slowest of single-row UPDATEs sent one after another, 10 ms apart, while the ALTER ran: the longest the application waited, to the millisecond. "
                  + "writes held: native = the whole ALTER (ALGORITHM=COPY blocks writes); osc = its own figure for the swap; "
                  + "pt-online-schema-change reports none. peak RSS: VmHWM of the tool's process (the server's own memory for native is not counted).");
Console.WriteLine();
Console.WriteLine("Per second, tps/p99 ms (* = a second overlapping the ALTER; [..] = osc's phases in that second):");
timelines.ForEach(Console.WriteLine);
foreach (var (name, o, _, _) in results.Where(r => r.Outcome.Phases is not null))
{
    Console.WriteLine();
    Console.WriteLine($"{name} phases: {o.Phases}");
}

Console.WriteLine();
foreach (var (name, o, _, _) in results)
{
    Console.WriteLine($"{name} CPU: server {Seconds(o.ServerCpu)} during the ALTER" + (o.Cpu is null ? "" : $", the tool's process {Seconds(o.Cpu)}")
                      + $" (over {o.Elapsed.TotalSeconds:0.0} s on {Environment.ProcessorCount} cores)");
}

static string Seconds(TimeSpan? time) => time is { } t ? $"{t.TotalSeconds:0.0} s" : "—";

int failed = results.Count(r => !r.Outcome.Ok);
return failed == 0 ? postgresExit : 1;
