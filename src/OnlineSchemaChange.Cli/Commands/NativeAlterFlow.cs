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
/// `osc alter` for an ALTER that needs no copy (`--native auto`, the default): the planner tries it on an empty copy
/// first. A change the server makes as a catalog change only (mode "instant") runs natively under the cut-over's
/// lock timeout and retries; on PostgreSQL, a change with a non-blocking native form (mode "safe-variant":
/// CONCURRENTLY, NOT VALID then VALIDATE) runs as those steps, the brief ones under the same bounds. No shadow, copy,
/// stream or swap, and nothing left behind.
/// </summary>
internal static class NativeAlterFlow
{
    /// <summary>The plan when the ALTER can run natively without blocking writes for more than a brief lock; null when it needs a rebuild.</summary>
    public static async Task<AlterPlan?> PlanAsync(ConnectionTarget target, TableName table, string alter, CancellationToken cancellationToken)
    {
        IAlterPlanner planner = target.Engine == DatabaseEngine.MySql ? new MySqlAlterPlanner(target) : new PostgresAlterPlanner(target);
        AlterPlan plan;
        try
        {
            plan = await planner.PlanAsync(table, alter, cancellationToken);
        }
        catch (Core.OscException)
        {
            // The empty copy lacks what the ALTER names (MariaDB's CREATE TABLE ... LIKE copies no foreign keys, so
            // DROP FOREIGN KEY fails there): the rebuild's checks, made on the real table, say what is wrong, if anything.
            return null;
        }

        if (plan.InstantStatement is null && plan.SafeSteps is null)
        {
            return null;
        }

        await using IAsyncDisposable run = await HoldRunAsync(target, table, "Its shadow would be in the way of this ALTER.", cancellationToken);
        return plan;
    }

    /// <summary>The table's run lock, held until disposed; refuses while another run of ours holds it or left tables behind.</summary>
    private static Task<IAsyncDisposable> HoldRunAsync(ConnectionTarget target, TableName table, string consequence, CancellationToken cancellationToken) =>
        target.Engine == DatabaseEngine.MySql
            ? MySqlNativeStepRunner.HoldRunAsync(target, table, consequence, cancellationToken)
            : PostgresNativeStepRunner.HoldRunAsync(target, table, consequence, cancellationToken);

    private static string Mode(AlterPlan plan) => plan.InstantStatement is not null ? "instant" : "safe-variant";

    public static int DryRun(OscConsole console, bool asJson, AlterPlan plan, CutoverOptions cutover)
    {
        if (asJson)
        {
            console.WriteJson(new
            {
                dryRun = true,
                mode = Mode(plan),
                table = plan.Table,
                serverVersion = plan.ServerVersion,
                alter = plan.Alter,
                statement = plan.InstantStatement,
                steps = plan.SafeSteps?.Select(s => new { phase = s.Phase, sql = s.Sql, brief = s.Lock == NativeStepLock.Brief, undo = s.Undo?.Sql }),
                method = plan.Findings.Method,
                @lock = plan.Findings.Lock,
                lockTimeoutSeconds = cutover.LockTimeout.TotalSeconds,
                attempts = cutover.Attempts,
                notes = plan.Notes,
            });
            return 0;
        }

        console.Ansi.MarkupLine($"[bold]Dry run[/] of an ALTER of [bold]{Markup.Escape(plan.Table)}[/] on {Markup.Escape(Server(plan))}: nothing was changed.");
        if (plan.InstantStatement is not null)
        {
            console.Ansi.MarkupLine($"On this server the ALTER is a [green]catalog change only[/] ({Markup.Escape(plan.Findings.Method)}; lock: {Markup.Escape(plan.Findings.Lock)}): "
                                    + "no row is rewritten, so no shadow table, copy or swap is needed.");
        }
        else
        {
            console.Ansi.MarkupLine($"Natively the ALTER would hold {Markup.Escape(plan.Findings.Lock)} while it works ({Markup.Escape(plan.Findings.Method)}); "
                                    + "it has a [green]non-blocking form[/], run step by step, so no shadow table, copy or swap is needed. Steps that take a brief lock are marked *.");
        }

        console.Ansi.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"--execute runs it natively, waiting at most {cutover.LockTimeout.TotalSeconds:0.#} s for each brief lock, up to {cutover.Attempts} attempts each:")));
        IEnumerable<string> shown = plan.SafeSteps is { } steps ? steps.Select(s => (s.Lock == NativeStepLock.Brief ? "* " : "  ") + s.Sql) : [plan.InstantStatement!];
        foreach (string sql in shown)
        {
            console.Ansi.MarkupLine($"    {Markup.Escape(sql)}");
        }

        if (plan.SafeSteps is not null)
        {
            console.Ansi.MarkupLine("If a step fails, what the steps before it added is removed again.");
        }

        foreach (string note in plan.Notes)
        {
            console.Ansi.MarkupLine($"Note: {Markup.Escape(note)}");
        }

        console.Ansi.MarkupLine("Add [bold]--execute[/] to run it; [bold]--native off[/] rebuilds the table online instead.");
        return 0;
    }

    /// <summary>
    /// Runs the change natively: the exit code when it is done, or null when the server refused a catalog change on
    /// the real table with nothing changed, and the online rebuild is to go on instead (the startup hooks have run).
    /// </summary>
    public static async Task<int?> ExecuteAsync(OscConsole console, bool asJson, AlterPlan plan, ConnectionTarget target, TableName table, CutoverOptions cutover,
        string? postponeFlagFile, HookRunner? hooks, CancellationToken cancellationToken)
    {
        string mode = Mode(plan);
        long started = Stopwatch.GetTimestamp();
        if (asJson)
        {
            console.WriteJsonLine(new { @event = "plan", mode, statement = plan.InstantStatement, steps = plan.SafeSteps?.Select(s => s.Sql), method = plan.Findings.Method });
        }
        else
        {
            console.Progress(plan.InstantStatement is not null
                ? $"On {Server(plan)} this ALTER changes the catalog only (on the planner's empty copy: {plan.Findings.Method}; {plan.Findings.Lock}): running it natively, no shadow table needed."
                : $"On {Server(plan)} this ALTER has a non-blocking form: running it natively in {Count(plan.SafeSteps!.Count, "step")}, no shadow table needed.");
        }

        (TimeSpan held, int attempts, IReadOnlyList<CutoverStep> stepTimes) done;
        // Held until the steps are done: a rebuild started meanwhile would copy a table that changes under it. It is
        // let go before a fallback to the rebuild, which takes it again.
        IAsyncDisposable run = await HoldRunAsync(target, table, "The two ALTERs would change the table under each other.", cancellationToken);
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

            done = await RunAsync(console, asJson, plan, target, table, cutover, cancellationToken);
        }
        catch (NativeStepRefusedException refused) when (plan.InstantStatement is not null)
        {
            // A catalog change refused on the real table changed nothing, and the rebuild may make it. A refused
            // non-blocking form would meet the same rows in a rebuild's copy: its error stands.
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
        finally
        {
            await run.DisposeAsync();
        }

        TimeSpan total = Stopwatch.GetElapsedTime(started);
        if (hooks is not null)
        {
            foreach (string failed in await hooks.RunReportingAsync(HookEvents.Success, new Dictionary<string, string>
                     {
                         ["OSC_METHOD"] = mode,
                         ["OSC_ELAPSED_SECONDS"] = total.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture),
                         ["OSC_ROWS_COPIED"] = "0",
                         ["OSC_CHANGES_APPLIED"] = "0",
                         ["OSC_WRITES_BLOCKED_MILLIS"] = done.held.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture),
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
                mode,
                totalSeconds = Math.Round(total.TotalSeconds, 2),
                statement = plan.InstantStatement,
                steps = done.stepTimes.Select(s => new { step = s.Name, millis = Math.Round(s.Elapsed.TotalMilliseconds, 1) }),
                rowsCopied = 0,
                changesApplied = 0,

                // The brief statements' whole time, lock waits included: an upper bound on what a write waited on them.
                writesBlockedMillis = Math.Round(done.held.TotalMilliseconds, 1),
                cutOverAttempts = done.attempts,
                oldTable = (string?)null,
                notes = Array.Empty<string>(),
            });
        }
        else
        {
            string how = plan.SafeSteps is { } steps ? $"in {Count(steps.Count, "step")}" : "as a catalog change";
            string locks = plan.SafeSteps?.All(s => s.Lock == NativeStepLock.Concurrent) == true
                ? "no step locked writes out"
                : string.Create(CultureInfo.InvariantCulture, $"its brief locks took {done.held.TotalMilliseconds:0} ms, their waits included ({Count(done.attempts, "attempt")})");
            console.Ansi.MarkupLine("[green]Done[/]" + Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $" in {total.TotalSeconds:0.00} s: the ALTER ran natively {how}; {locks}; no rows copied, no table kept.")));
        }

        return 0;
    }

    /// <summary>Runs the catalog change as one brief step, or the steps: how long the brief ones took (waits included), the attempts, each step's time.</summary>
    private static async Task<(TimeSpan, int, IReadOnlyList<CutoverStep>)> RunAsync(OscConsole console, bool asJson, AlterPlan plan, ConnectionTarget target, TableName table,
        CutoverOptions cutover, CancellationToken cancellationToken)
    {
        IReadOnlyList<NativeStep> steps = plan.SafeSteps
                                          ?? [new NativeStep("alter", "The catalog change.", plan.InstantStatement!, NativeStepLock.Brief)];
        INativeStepRunner runner = target.Engine == DatabaseEngine.MySql
            ? new MySqlNativeStepRunner(target, table with { Schema = table.Schema ?? target.Database })
            : new PostgresNativeStepRunner(target, table);
        NativeStepsResult result = await NativeSteps.RunAsync(steps, runner, cutover, state => Report(console, asJson, state), cancellationToken);
        TimeSpan held = TimeSpan.FromTicks(result.Steps.Zip(steps).Where(p => p.Second.Lock == NativeStepLock.Brief).Sum(p => p.First.Elapsed.Ticks));
        return (held, result.Attempts, result.Steps);
    }

    /// <summary>"MariaDB 10.11.6-MariaDB-log", "PostgreSQL 15.4".</summary>
    private static string Server(AlterPlan plan) =>
        plan.ServerVersion.StartsWith(plan.Engine, StringComparison.OrdinalIgnoreCase) ? plan.ServerVersion : $"{plan.Engine} {plan.ServerVersion}";

    private static string Count(int n, string noun) => string.Create(CultureInfo.InvariantCulture, $"{n} {noun}{(n == 1 ? "" : "s")}");

    private static void Report(OscConsole console, bool asJson, string state)
    {
        if (asJson)
        {
            console.WriteJsonLine(new { @event = "native", state });
        }
        else
        {
            console.Progress(state);
        }
    }
}
