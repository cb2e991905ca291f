using System.Diagnostics;
using System.Globalization;
using MySqlConnector;
using Npgsql;
using OnlineSchemaChange.LocalServers;

// Starts a throwaway MariaDB and PostgreSQL on loopback, fills a table of --rows rows in each, runs the real `osc plan`
// binary on ALTERs of every kind, then alters the MariaDB table online with `osc alter --execute` while a write load
// runs, printing the load's latency before, during and after. Everything is removed at the end.
int rows = args.Length > 1 && args[0] == "--rows" ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000;
string osc = OscBinary.Locate();
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };

var clock = Stopwatch.StartNew();
Console.WriteLine("Starting a throwaway MariaDB and PostgreSQL on loopback...");
// A redo log with room for a 1,000,000-row copy, as the end-to-end benchmark's: the tests' 48 MB one is cycled several
// times by it, and the checkpoint flushing stalls the application's commits (docs/benchmarks.md).
Task<LocalMariaDb> mariaTask = LocalMariaDb.StartAsync(new MariaDbOptions { BufferPoolSize = "512M", ExtraArguments = ["--innodb-log-file-size=1G"] }, cancel.Token);
Task<LocalPostgres> postgresTask = LocalPostgres.StartAsync(new PostgresOptions
{
    Settings = new Dictionary<string, string> { ["shared_buffers"] = "256MB", ["maintenance_work_mem"] = "256MB" },
}, cancel.Token);
await using LocalMariaDb maria = await mariaTask;
await using LocalPostgres postgres = await postgresTask;
Console.WriteLine($"  {maria} and {postgres} ready in {clock.Elapsed.TotalSeconds:0.0} s");

clock.Restart();
await Task.WhenAll(DemoTables.FillMariaDbAsync(maria.ConnectionString, rows, cancel.Token), DemoTables.FillPostgresAsync(postgres.ConnectionString, rows, cancel.Token));
Console.WriteLine($"  demo.sbtest1 (MariaDB) and public.pgbench_accounts (PostgreSQL) filled with {rows:N0} rows each in {clock.Elapsed.TotalSeconds:0.0} s");

string mariaUri = $"mysql://osc@127.0.0.1:{maria.Port}/demo";
string postgresUri = $"postgres://osc@127.0.0.1:{postgres.Port}/postgres";
string[][] plans =
[
    [mariaUri, "sbtest1", "ADD COLUMN note VARCHAR(100)"],
    [mariaUri, "sbtest1", "ADD INDEX c_prefix (c(16))"],
    [mariaUri, "sbtest1", "MODIFY k BIGINT NOT NULL DEFAULT 0"],
    [mariaUri, "sbtest1", "RENAME COLUMN pad TO padding"],
    [postgresUri, "pgbench_accounts", "ADD COLUMN note text"],
    [postgresUri, "pgbench_accounts", "ALTER COLUMN bid TYPE bigint"],
    [postgresUri, "pgbench_accounts", "CREATE INDEX accounts_bid ON pgbench_accounts (bid)"],
    [postgresUri, "pgbench_accounts", "ALTER COLUMN abalance SET NOT NULL"],
];

int failures = 0;
foreach (string[] plan in plans)
{
    Console.WriteLine();
    Console.WriteLine(new string('=', 100));
    Console.WriteLine($"$ osc plan {plan[0]} --table {plan[1]} --alter \"{plan[2]}\"");
    Console.WriteLine();
    int code = await OscBinary.RunAsync(osc, ["plan", plan[0], "--table", plan[1], "--alter", plan[2]], password: "osc", cancel.Token);
    Console.WriteLine($"(exit code {code})");
    failures += code == 1 ? 1 : 0;
}

// The main job: the table altered online while an application writes to it.
Console.WriteLine();
Console.WriteLine(new string('=', 100));
Console.WriteLine($"Live: MODIFY k BIGINT on demo.sbtest1 ({rows:N0} rows) while a sysbench-shaped load writes 300 transactions/s.");
string loadConnection = new MySqlConnectionStringBuilder(maria.ConnectionString) { Database = "demo" }.ConnectionString;

// osc alter --execute on sbtest1 with the load writing from `margin` before to `margin` after it.
async Task<(int Code, WriteLoad Load, TimeSpan Start, TimeSpan End, TimeSpan LoadEnd)> AlterUnderLoadAsync(string alter, TimeSpan margin)
{
    var load = new WriteLoad(loadConnection, rows, threads: 4, transactionsPerSecond: 300);
    using var stopLoad = new CancellationTokenSource();
    Task loading = load.RunAsync(stopLoad.Token);
    await Task.Delay(margin, cancel.Token);
    TimeSpan start = load.Now;
    Console.WriteLine($"$ osc alter {mariaUri} --table sbtest1 --alter \"{alter}\" --execute");
    int code = await OscBinary.RunAsync(osc, ["alter", mariaUri, "--table", "sbtest1", "--alter", alter, "--execute"], password: "osc", cancel.Token);
    TimeSpan end = load.Now;
    await Task.Delay(margin, cancel.Token);
    TimeSpan loadEnd = load.Now;
    await stopLoad.CancelAsync();
    await loading;
    return (code, load, start, end, loadEnd);
}

var (alterCode, load, alterStart, alterEnd, loadEnd) = await AlterUnderLoadAsync("MODIFY k BIGINT NOT NULL DEFAULT 0", TimeSpan.FromSeconds(5));

Console.WriteLine();
Console.WriteLine("What the application felt (latency of its write transactions, in milliseconds):");
Console.WriteLine($"{"phase",-8} {"seconds",8} {"transactions",13} {"worst 1-s p99",14} {"slowest",9}");
// Whole seconds of the load: a second the ALTER started or ended in counts as during, so neither before nor after
// holds any of its effect.
long firstDuring = (long)alterStart.TotalSeconds, firstAfter = (long)Math.Ceiling(alterEnd.TotalSeconds);
foreach (var (phase, from, to) in new[] { ("before", 0L, firstDuring), ("during", firstDuring, firstAfter), ("after", firstAfter, (long)loadEnd.TotalSeconds) })
{
    var (transactions, p99, max) = load.Summarize(from, to);
    Console.WriteLine($"{phase,-8} {to - from,8} {transactions,13:N0} {p99,14:0.0} {max,9:0.0}");
}

Console.WriteLine($"failed transactions: {load.Failed}; osc exit code {alterCode}");
failures += alterCode == 0 ? 0 : 1;

// Changes that need no copy: osc runs them natively, under the swap's lock timeout and retries.
Console.WriteLine();
Console.WriteLine(new string('=', 100));
Console.WriteLine("Live: ADD COLUMN on the same table, a catalog change on MariaDB, under the same load; then an index on PostgreSQL, built concurrently.");
var (instantCode, instantLoad, instantStart, instantEnd, _) = await AlterUnderLoadAsync("ADD COLUMN note VARCHAR(100)", TimeSpan.FromSeconds(2));
var (instantTransactions, instantP99, instantMax) = instantLoad.Summarize((long)instantStart.TotalSeconds, (long)Math.Ceiling(instantEnd.TotalSeconds));
Console.WriteLine($"while it ran: {instantTransactions:N0} transactions, worst 1-s p99 {instantP99:0.0} ms, slowest {instantMax:0.0} ms; "
                  + $"failed transactions: {instantLoad.Failed}; osc exit code {instantCode}");
failures += instantCode == 0 ? 0 : 1;

Console.WriteLine();
Console.WriteLine($"$ osc alter {postgresUri} --table pgbench_accounts --alter \"CREATE INDEX accounts_bid ON pgbench_accounts (bid)\" --execute");
int indexCode = await OscBinary.RunAsync(osc, ["alter", postgresUri, "--table", "pgbench_accounts", "--alter", "CREATE INDEX accounts_bid ON pgbench_accounts (bid)", "--execute"],
    password: "osc", cancel.Token);
Console.WriteLine($"(exit code {indexCode})");
failures += indexCode == 0 ? 0 : 1;

Console.WriteLine();
Console.WriteLine(failures == 0 ? "Demo finished; the servers and their files are being removed." : $"{failures} step(s) failed.");
return failures == 0 ? 0 : 1;

internal static class DemoTables
{
    // sysbench's table shape, filled from MariaDB's sequence engine: seconds instead of sysbench's minutes.
    public static async Task FillMariaDbAsync(string connectionString, int rows, CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        foreach (string sql in new[]
        {
            "CREATE DATABASE demo",
            "CREATE TABLE demo.sbtest1 (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB",
            $"INSERT INTO demo.sbtest1 (id, k, c, pad) SELECT seq, FLOOR(1 + RAND() * {rows}), CONCAT(LPAD(seq, 11, '0'), REPEAT('-abcdefghi', 10)), REPEAT('x', 59) FROM demo.seq_1_to_{rows}",
            "ANALYZE TABLE demo.sbtest1",
        })
        {
            await using var command = new MySqlCommand(sql, connection) { CommandTimeout = 600 };
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    // pgbench's accounts table shape.
    public static async Task FillPostgresAsync(string connectionString, int rows, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        foreach (string sql in new[]
        {
            "CREATE TABLE pgbench_accounts (aid int NOT NULL PRIMARY KEY, bid int, abalance int, filler char(84))",
            $"INSERT INTO pgbench_accounts SELECT a, (a - 1) / 100000 + 1, 0, '' FROM generate_series(1, {rows}) a",
            "ANALYZE pgbench_accounts",
        })
        {
            await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 600 };
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }
}

internal static class OscBinary
{
    private static readonly string[] Configurations = ["Release", "Debug"];

    /// <summary>The osc the solution build produced, found from the repository root.</summary>
    public static string Locate()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "OnlineSchemaChange.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        string root = dir ?? throw new InvalidOperationException("Run the demo from inside the repository (tools/demo).");
        string? osc = Configurations
            .Select(c => Path.Combine(root, "src", "OnlineSchemaChange.Cli", "bin", c, "net10.0", "osc.dll"))
            // tools/publish's precompiled build, the one to measure and show, when it is the newest.
            .Append(Path.Combine(root, "artifacts", "osc", "osc.dll"))
            .Where(File.Exists).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault();
        return osc ?? throw new InvalidOperationException("osc is not built: run tools/demo, which builds it first.");
    }

    public static async Task<int> RunAsync(string osc, IEnumerable<string> arguments, string password, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        start.ArgumentList.Add(osc);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // The convention osc teaches: the password in the environment, never on the command line.
        start.Environment["OSC_PASSWORD"] = password;
        using Process process = Process.Start(start)!;
        await process.WaitForExitAsync(cancellationToken);
        return process.ExitCode;
    }
}
