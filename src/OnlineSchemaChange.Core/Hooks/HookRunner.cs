using System.Diagnostics;
using System.Globalization;

namespace OnlineSchemaChange.Core.Hooks;

/// <summary>
/// Runs an operator's programs at points of a migration (gh-ost's hooks): every executable file in the hooks directory
/// whose name starts with <c>osc-on-&lt;event&gt;</c>, in name order, one after the other, each with the migration's
/// context in OSC_* environment variables. Their output goes to osc's stderr, line by line under the hook's name, so
/// that stdout keeps only osc's own (JSON) output. A hook that exits non-zero fails its event: before the swap that
/// stops the migration, which is how a script vetoes it.
/// </summary>
public sealed class HookRunner(string directory, IReadOnlyDictionary<string, string> context, TextWriter output)
{
    public const string Prefix = "osc-on-";

    /// <summary>The hooks of an event, in the order they run.</summary>
    public IReadOnlyList<string> HooksOf(string hookEvent)
    {
        if (!Directory.Exists(directory))
        {
            throw new OscException($"The hooks directory {directory} does not exist.", "Create it, or pass --hooks-path with the directory that holds the hooks.");
        }

        return Directory.EnumerateFiles(directory, Prefix + hookEvent + "*")
            .Where(IsExecutable)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// Runs the event's hooks with <paramref name="extra"/> added to the context; throws <see cref="OscException"/> naming
    /// the first that fails (the others after it do not run).
    /// </summary>
    public async Task RunAsync(string hookEvent, IReadOnlyDictionary<string, string>? extra, CancellationToken cancellationToken)
    {
        foreach (string hook in HooksOf(hookEvent))
        {
            int code = await RunOneAsync(hook, hookEvent, extra, cancellationToken);
            if (code != 0)
            {
                throw new OscException($"The {hookEvent} hook {Path.GetFileName(hook)} exited with code {code.ToString(CultureInfo.InvariantCulture)}.",
                    $"A hook that fails stops what it guards ({Describe(hookEvent)}); its output is above. Fix the condition it checks, or move it out of the hooks directory.");
            }
        }
    }

    /// <summary>Runs the event's hooks and reports a failing one instead of throwing: for events nothing depends on any more.</summary>
    public async Task<IReadOnlyList<string>> RunReportingAsync(string hookEvent, IReadOnlyDictionary<string, string>? extra, CancellationToken cancellationToken)
    {
        var failures = new List<string>();
        foreach (string hook in HooksOf(hookEvent))
        {
            int code = await RunOneAsync(hook, hookEvent, extra, cancellationToken);
            if (code != 0)
            {
                failures.Add($"The {hookEvent} hook {Path.GetFileName(hook)} exited with code {code.ToString(CultureInfo.InvariantCulture)}.");
            }
        }

        return failures;
    }

    private static string Describe(string hookEvent) => hookEvent switch
    {
        HookEvents.Startup => "the migration does not start; nothing was created",
        HookEvents.BeforeCutover => "the tables are not swapped; the work is kept for --resume",
        _ => "the migration",
    };

    private async Task<int> RunOneAsync(string hook, string hookEvent, IReadOnlyDictionary<string, string>? extra, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(hook)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = directory,
        };
        start.Environment["OSC_EVENT"] = hookEvent;
        foreach ((string variable, string value) in context.Concat(extra ?? new Dictionary<string, string>()))
        {
            start.Environment[variable] = value;
        }

        using var process = new Process { StartInfo = start };
        string name = Path.GetFileName(hook);
        process.Start();
        process.StandardInput.Close();
        Task forwardOut = ForwardAsync(process.StandardOutput, name);
        Task forwardErr = ForwardAsync(process.StandardError, name);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        await Task.WhenAll(forwardOut, forwardErr);
        return process.ExitCode;
    }

    private async Task ForwardAsync(StreamReader reader, string name)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            lock (output)
            {
                output.WriteLine($"hook {name}: {line}");
            }
        }
    }

    private static bool IsExecutable(string path) =>
        OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
}

/// <summary>The points of a migration where hooks run.</summary>
public static class HookEvents
{
    /// <summary>Before anything is created; a failure stops the migration there.</summary>
    public const string Startup = "startup";

    /// <summary>After verification, right before the swap; a failure stops the migration, its work kept for --resume.</summary>
    public const string BeforeCutover = "before-cut-over";

    /// <summary>After the swap and what follows it; a failure is reported, the migration stands.</summary>
    public const string Success = "success";

    /// <summary>After a migration failed or was stopped, with OSC_ERROR; a failure is reported.</summary>
    public const string Failure = "failure";
}
