using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using MySqlConnector;

namespace OnlineSchemaChange.EndToEnd;

/// <summary>How one method's ALTER went. WritesHeld is null when the method does not say.</summary>
public sealed record MethodOutcome(bool Ok, TimeSpan Elapsed, TimeSpan? WritesHeld, long? PeakRssBytes, string? Detail)
{
    /// <summary>osc's phases and how long each lasted, from its --json phase events (null for the other methods).</summary>
    public string? Phases { get; init; }

    /// <summary>
    /// When each of osc's phases started, from the process's launch: its phase events' times plus its start-up before
    /// its own clock (the process's time less the run's own total). Empty for the other methods.
    /// </summary>
    public IReadOnlyList<(string Name, TimeSpan Start)> PhaseStarts { get; init; } = [];

    /// <summary>The phases overlapping [from, to) (times from the launch), shortened: "copy", "index", "verify", ...</summary>
    public string PhasesDuring(TimeSpan from, TimeSpan to, TimeSpan end)
    {
        var names = new List<string>();
        for (int i = 0; i < PhaseStarts.Count; i++)
        {
            TimeSpan start = PhaseStarts[i].Start, stop = i + 1 < PhaseStarts.Count ? PhaseStarts[i + 1].Start : end;
            if (start < to && stop > from)
            {
                names.Add(PhaseStarts[i].Name switch
                {
                    "copying" => "copy",
                    "building indexes" => "index",
                    "catching up" => "catch-up",
                    "verifying" => "verify",
                    "cutting over" => "swap",
                    string other => other.Split(' ')[0],
                });
            }
        }

        return names.Count == 0 ? "" : "[" + string.Join(",", names.Distinct()) + "]";
    }

    /// <summary>CPU time (user + system) of the tool's process; null for native.</summary>
    public TimeSpan? Cpu { get; init; }

    /// <summary>CPU time the database server spent during the ALTER, when the benchmark could watch it.</summary>
    public TimeSpan? ServerCpu { get; init; }
}

public static partial class Methods
{
    public static async Task<MethodOutcome> NativeAsync(string connectionString, string change, CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(new MySqlConnectionStringBuilder(connectionString) { Database = "sbtest" }.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand($"ALTER TABLE sbtest1 {change}, ALGORITHM=COPY", connection) { CommandTimeout = 0 };
        var clock = Stopwatch.StartNew();
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
            // ALGORITHM=COPY blocks writes from start to end: the whole ALTER is the hold.
            return new MethodOutcome(true, clock.Elapsed, clock.Elapsed, null, null);
        }
        catch (MySqlException e)
        {
            return new MethodOutcome(false, clock.Elapsed, null, null, e.Message);
        }
    }

    /// <summary>Runs a tool as its own process, timing it and watching its peak memory.</summary>
    public static async Task<MethodOutcome> ExternalAsync(string file, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var clock = Stopwatch.StartNew();
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        Task<string> stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        Task<(long? PeakBytes, TimeSpan? Cpu)> watch = PeakMemory.WatchAsync(process, cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        TimeSpan elapsed = clock.Elapsed;
        string output = await stdout;
        string errors = await stderr;
        (long? peakBytes, TimeSpan? cpu) = await watch;

        Match held = WritesBlocked().Match(output);
        TimeSpan? writesHeld = held.Success ? TimeSpan.FromMilliseconds(double.Parse(held.Groups[1].Value, CultureInfo.InvariantCulture)) : null;
        if (process.ExitCode != 0)
        {
            Console.Error.WriteLine(output);
            Console.Error.WriteLine(errors);
            return new MethodOutcome(false, elapsed, writesHeld, peakBytes, $"{file} exited with {process.ExitCode}") { Cpu = cpu };
        }

        Match verification = VerificationWritesBlocked().Match(output);
        List<(string Name, TimeSpan Start)> starts = PhaseStartsOf(output, elapsed);
        string? phases = PhaseDurations(starts, elapsed);
        if (phases is not null && verification.Success)
        {
            phases += $"; verification held writes {double.Parse(verification.Groups[1].Value, CultureInfo.InvariantCulture):0.#} ms";
        }

        return new MethodOutcome(true, elapsed, writesHeld, peakBytes, null) { Phases = phases, Cpu = cpu, PhaseStarts = starts };
    }

    /// <summary>
    /// "startup 0.4 s, copying 8.1 s, ..." from the phases' starts: each lasts until the next one starts, the last until
    /// the process exits; startup runs from the launch, so it includes the process's start before osc's own clock.
    /// </summary>
    private static string? PhaseDurations(List<(string Name, TimeSpan Start)> starts, TimeSpan elapsed) =>
        starts.Count == 0
            ? null
            : string.Join(", ", starts.Select((p, i) => $"{p.Name} {((i + 1 < starts.Count ? starts[i + 1].Start : elapsed) - p.Start).TotalSeconds:0.0} s"));

    private static List<(string Name, TimeSpan Start)> PhaseStartsOf(string output, TimeSpan elapsed)
    {
        Match total = TotalSeconds().Match(output);
        if (!total.Success)
        {
            return [];
        }

        TimeSpan startUp = elapsed - TimeSpan.FromSeconds(double.Parse(total.Groups[1].Value, CultureInfo.InvariantCulture));
        var starts = new List<(string, TimeSpan)> { ("startup", TimeSpan.Zero) };
        starts.AddRange(PhaseEvent().Matches(output).Select(m =>
            (m.Groups[1].Value, startUp + TimeSpan.FromSeconds(double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)))));
        return starts;
    }

    [GeneratedRegex("\"totalSeconds\": *([0-9.]+)")]
    private static partial Regex TotalSeconds();

    [GeneratedRegex("\"event\": *\"phase\", *\"phase\": *\"([^\"]+)\", *\"elapsedSeconds\": *([0-9.]+)")]
    private static partial Regex PhaseEvent();

    [GeneratedRegex("\"writesBlockedMillis\": *([0-9.]+)")]
    private static partial Regex WritesBlocked();

    [GeneratedRegex("\"verificationWritesBlockedMillis\": *([0-9.]+)")]
    private static partial Regex VerificationWritesBlocked();
}

/// <summary>The load's view of one run: the ALTER window is every report second that overlaps it.</summary>
public sealed record LoadSummary(double P99Before, double P99During, double Errors, double Reconnects, int LongestStallSeconds)
{
    public static LoadSummary Of(IReadOnlyList<SysbenchSecond> seconds, TimeSpan alterStart, TimeSpan alterEnd)
    {
        var oneSecond = TimeSpan.FromSeconds(1);
        double before = seconds.Where(s => s.Arrived <= alterStart).Select(s => s.P99Millis).DefaultIfEmpty().Max();
        double during = seconds.Where(s => s.Arrived > alterStart && s.Arrived - oneSecond < alterEnd).Select(s => s.P99Millis).DefaultIfEmpty().Max();
        int longest = 0, run = 0;
        foreach (SysbenchSecond s in seconds)
        {
            run = s.Tps == 0 ? run + 1 : 0;
            longest = Math.Max(longest, run);
        }

        // Each report covers one second, so a per-second rate is that second's count.
        return new LoadSummary(before, during, seconds.Sum(s => s.Errors), seconds.Sum(s => s.Reconnects), longest);
    }
}

public static class SbTest
{
    /// <summary>The server's process id, from its pid file (the benchmark's server runs on this machine).</summary>
    public static async Task<int> ServerPidAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand("SELECT @@pid_file", connection);
        string file = (string)(await command.ExecuteScalarAsync(cancellationToken))!;
        return int.Parse((await File.ReadAllTextAsync(file, cancellationToken)).Trim(), CultureInfo.InvariantCulture);
    }

    // sysbench's sbtest1 shape, filled from MariaDB's sequence engine: seconds instead of sysbench prepare's minutes.
    public static async Task RecreateAsync(string connectionString, int rows, CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        foreach (string sql in new[]
        {
            "DROP DATABASE IF EXISTS sbtest",
            "CREATE DATABASE sbtest",
            "CREATE TABLE sbtest.sbtest1 (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB",
            $"INSERT INTO sbtest.sbtest1 (id, k, c, pad) SELECT seq, FLOOR(1 + RAND(seq) * {rows}), CONCAT(LPAD(seq, 11, '0'), REPEAT('-abcdefghi', 10)), REPEAT('x', 59) FROM sbtest.seq_1_to_{rows}",
            "ANALYZE TABLE sbtest.sbtest1",
        })
        {
            await using var command = new MySqlCommand(sql, connection) { CommandTimeout = 0 };
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    public static async Task<string?> ColumnTypeAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand(
            "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'sbtest' AND TABLE_NAME = 'sbtest1' AND COLUMN_NAME = 'k'", connection);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }
}

public static class Tools
{
    private static readonly string[] Configurations = ["Release", "Debug"];

    public static bool OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin").Append("/sbin")
        .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, name)));

    /// <summary>The osc built next to this program (the project references the Cli), found from the repository root.</summary>
    public static string? LocateOsc()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "OnlineSchemaChange.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        return dir is null ? null : Configurations
            .Select(c => Path.Combine(dir, "src", "OnlineSchemaChange.Cli", "bin", c, "net10.0", "osc.dll"))
            // tools/publish's precompiled build, the one to measure and show, when it is the newest.
            .Append(Path.Combine(dir, "artifacts", "osc", "osc.dll"))
            .Where(File.Exists).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault();
    }
}
