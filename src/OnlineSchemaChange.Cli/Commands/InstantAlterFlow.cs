using System.Diagnostics;
using System.Globalization;
using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Hooks;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Migration;
using OnlineSchemaChange.MySql.Plan;
using OnlineSchemaChange.Postgres.Migration;
using OnlineSchemaChange.Postgres.Plan;
using Spectre.Console;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>
/// `osc alter` for an ALTER the server makes as a catalog change only (`--instant auto`, the default): the planner
/// tries it on an empty copy first, and when the server rewrites, scans and indexes nothing there, the ALTER runs
/// natively under the cut-over's lock timeout and retries. No shadow, copy, stream or swap: milliseconds whatever the
/// table's size, and nothing left behind to clean up.
/// </summary>
internal static class InstantAlterFlow
{
    /// <summary>The plan when the ALTER is a catalog change on this server and table; null when it needs a rebuild.</summary>
    public static async Task<AlterPlan?> PlanAsync(ConnectionTarget target, TableName table, string alter, CancellationToken cancellationToken)
    {
        IAlterPlanner planner = target.Engine == DatabaseEngine.MySql ? new MySqlAlterPlanner(target) : new PostgresAlterPlanner(target);
        AlterPlan plan = await planner.PlanAsync(table, alter, cancellationToken);
        if (plan.InstantStatement is null)
        {
            return null;
        }

        await (target.Engine == DatabaseEngine.MySql
            ? MySqlInstantAlter.RefuseUnfinishedRunAsync(target, table, cancellationToken)
            : PostgresInstantAlter.RefuseUnfinishedRunAsync(target, table, cancellationToken));
        return plan;
    }

    public static int DryRun(OscConsole console, bool asJson, AlterPlan plan, CutoverOptions cutover)
    {
        if (asJson)
        {
            console.WriteJson(new
            {
                dryRun = true,
                mode = "instant",
                table = plan.Table,
                serverVersion = plan.ServerVersion,
                alter = plan.Alter,
                statement = plan.InstantStatement,
                method = plan.Findings.Method,
                @lock = plan.Findings.Lock,
                lockTimeoutSeconds = cutover.LockTimeout.TotalSeconds,
                attempts = cutover.Attempts,
                notes = plan.Notes,
            });
            return 0;
        }

        console.Ansi.MarkupLine($"[bold]Dry run[/] of an ALTER of [bold]{Markup.Escape(plan.Table)}[/] on {Markup.Escape(Server(plan))}: nothing was changed.");
        console.Ansi.MarkupLine($"On this server the ALTER is a [green]catalog change only[/] ({Markup.Escape(plan.Findings.Method)}; lock: {Markup.Escape(plan.Findings.Lock)}): "
                                + "no row is rewritten, so no shadow table, copy or swap is needed.");
        console.Ansi.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"--execute runs it natively, waiting at most {cutover.LockTimeout.TotalSeconds:0.#} s for the table's lock, up to {cutover.Attempts} attempts:")));
        console.Ansi.MarkupLine($"    {Markup.Escape(plan.InstantStatement!)}");
        foreach (string note in plan.Notes)
        {
            console.Ansi.MarkupLine($"Note: {Markup.Escape(note)}");
        }

        console.Ansi.MarkupLine("Add [bold]--execute[/] to run it; [bold]--instant off[/] rebuilds the table online instead.");
        return 0;
    }

    /// <summary>
    /// Runs the catalog change: the exit code when it is done, or null when the server refused it on the real table with
    /// nothing changed, and the online rebuild is to go on instead (the startup hooks have run by then).
    /// </summary>
    public static async Task<int?> ExecuteAsync(OscConsole console, bool asJson, AlterPlan plan, ConnectionTarget target, TableName table, CutoverOptions cutover,
        string? postponeFlagFile, HookRunner? hooks, CancellationToken cancellationToken)
    {
        string statement = plan.InstantStatement!;
        long started = Stopwatch.GetTimestamp();
        if (asJson)
        {
            console.WriteJsonLine(new { @event = "plan", mode = "instant", statement, method = plan.Findings.Method });
        }
        else
        {
            console.Progress($"On {Server(plan)} this ALTER changes the catalog only (on the planner's empty copy: {plan.Findings.Method}; {plan.Findings.Lock}): "
                             + "running it natively, no shadow table needed.");
        }

        IInstantAlterAttempt attempt = target.Engine == DatabaseEngine.MySql
            ? new MySqlInstantAlter(target, table with { Schema = table.Schema ?? target.Database }, statement)
            : new PostgresInstantAlter(target, table, statement);
        InstantAlterResult done;
        try
        {
            if (hooks is not null)
            {
                await hooks.RunAsync(HookEvents.Startup, null, cancellationToken);
            }

            string? shown = null;
            await MigrationSteps.PostponeCutoverAsync(postponeFlagFile, state =>
            {
                if (state != shown)
                {
                    shown = state;
                    Report(console, asJson, state);
                }
            }, null, cancellationToken);
            if (hooks is not null)
            {
                await hooks.RunAsync(HookEvents.BeforeCutover, null, cancellationToken);
            }

            done = await InstantAlter.RunAsync(statement, attempt, cutover, failure => Report(console, asJson, failure), cancellationToken);
        }
        catch (InstantAlterRefusedException refused)
        {
            Report(console, asJson, $"{refused.Message} Nothing was changed; rebuilding the table online instead.");
            return null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (hooks is not null)
            {
                await AlterCommand.RunFailureHooksAsync(hooks, e, console);
            }

            throw;
        }

        TimeSpan total = Stopwatch.GetElapsedTime(started);
        if (hooks is not null)
        {
            foreach (string failed in await hooks.RunReportingAsync(HookEvents.Success, new Dictionary<string, string>
                     {
                         ["OSC_METHOD"] = "instant",
                         ["OSC_ELAPSED_SECONDS"] = total.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture),
                         ["OSC_ROWS_COPIED"] = "0",
                         ["OSC_CHANGES_APPLIED"] = "0",
                         ["OSC_WRITES_BLOCKED_MILLIS"] = done.Elapsed.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture),
                         ["OSC_OLD_TABLE"] = "",
                     }, CancellationToken.None))
            {
                console.Progress($"warning: {failed} The ALTER itself succeeded.");
            }
        }

        if (asJson)
        {
            console.WriteJsonLine(new
            {
                @event = "done",
                mode = "instant",
                totalSeconds = Math.Round(total.TotalSeconds, 2),
                statement,
                rowsCopied = 0,
                changesApplied = 0,

                // The statement's whole time, its lock wait included: an upper bound on what a write waited on it.
                writesBlockedMillis = Math.Round(done.Elapsed.TotalMilliseconds, 1),
                cutOverAttempts = done.Attempts,
                oldTable = (string?)null,
                notes = Array.Empty<string>(),
            });
        }
        else
        {
            console.Ansi.MarkupLine("[green]Done[/]" + Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $" in {total.TotalSeconds:0.00} s: the ALTER ran as a catalog change in {done.Elapsed.TotalMilliseconds:0} ms, its lock wait included "
                + $"({done.Attempts} attempt{(done.Attempts == 1 ? "" : "s")}); no rows copied, no table kept.")));
        }

        return 0;
    }

    /// <summary>"MariaDB 10.11.6-MariaDB-log", "PostgreSQL 15.4": the engine named once.</summary>
    private static string Server(AlterPlan plan) =>
        plan.ServerVersion.Contains(plan.Engine, StringComparison.OrdinalIgnoreCase) ? plan.ServerVersion : $"{plan.Engine} {plan.ServerVersion}";

    private static void Report(OscConsole console, bool asJson, string state)
    {
        if (asJson)
        {
            console.WriteJsonLine(new { @event = "instant", state });
        }
        else
        {
            console.Progress(state);
        }
    }
}
