using System.Globalization;
using System.CommandLine;
using OnlineSchemaChange.Cli.Control;
using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Hooks;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Cutover;
using OnlineSchemaChange.MySql.Migration;
using OnlineSchemaChange.MySql.Throttle;
using OnlineSchemaChange.Postgres.Migration;
using Spectre.Console;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>
/// `osc alter`: the online ALTER. Without --execute it is a dry run, as gh-ost's default: every check, the shadow
/// created with the real ALTER and dropped again, and what the migration would do.
/// </summary>
internal static class AlterCommand
{
    public static Command Create(OscConsole console)
    {
        var connection = new ConnectionOptions();
        var table = SharedOptions.Table(SharedOptions.TableToAlter);
        var alter = SharedOptions.Alter("The change: \"MODIFY k BIGINT\" or a full ALTER TABLE statement");
        var execute = new Option<bool>("--execute") { Description = "Migrate for real (without it: a dry run that changes nothing)" };
        var json = SharedOptions.Json("Print the result as JSON, for scripts (progress as JSON lines with --execute)");
        var workers = new Option<int>("--workers") { Description = "Parallel copy workers", DefaultValueFactory = _ => 2 }.AtLeast(1);
        var chunkTime = new Option<int>("--chunk-time-millis") { Description = "Target time per copy chunk; chunks take no locks on the original", DefaultValueFactory = _ => 500 }.AtLeast(1);
        var replicas = new Option<string[]>("--replica") { Description = "A replica to watch for lag (connection URI; repeatable)", AllowMultipleArgumentsPerToken = false };
        var noDiscovery = new Option<bool>("--no-replica-discovery") { Description = "Without --replica, do not look for the primary's replicas (their lag then never pauses the copy)" };
        var maxLag = new Option<int>("--max-lag-millis") { Description = "Pause the copy while a replica lags more", DefaultValueFactory = _ => 1500 }.AtLeast(1);
        var maxLoad = new Option<string?>("--max-load") { Description = "Pause while a status variable exceeds a limit, e.g. Threads_running=50 (PostgreSQL: active_sessions=50)" };
        var criticalLoad = new Option<string?>("--critical-load") { Description = "Abort cleanly when a status variable exceeds a limit, e.g. Threads_running=200 (PostgreSQL: active_sessions=200)" };
        var maxWriteLatency = new Option<int>("--max-write-latency-millis") { Description = "Pause the copy while a small write (osc's heartbeat) takes longer than this; 0 never pauses for it", DefaultValueFactory = _ => 0 }.AtLeast(0);
        var throttleFlag = new Option<string?>("--throttle-flag-file") { Description = "Pause the copy while this file exists" };
        var postponeFlag = new Option<string?>("--postpone-cut-over-flag-file") { Description = "Wait before the swap while this file exists" };
        var lockTimeout = new Option<int>("--cut-over-lock-timeout-seconds") { Description = "Longest wait for the table lock at the swap (and so the longest any query waits on us)", DefaultValueFactory = _ => 3 }.AtLeast(1);
        var cutoverAttempts = new Option<int>("--cut-over-attempts") { Description = "Swap attempts before giving up", DefaultValueFactory = _ => 10 }.AtLeast(1);
        var hooksPath = new Option<string?>("--hooks-path")
        {
            Description = "Run the executables in this directory named osc-on-<event>* at a migration's startup, before-cut-over (a failing one stops it), success and failure, "
                          + "with its context in OSC_* variables (docs/operations.md)",
        };
        var skipVerify = new Option<bool>("--skip-verify") { Description = "Swap without comparing checksums first (not recommended)" };
        var dropOld = SharedOptions.DropOldTable("Drop the original after the swap instead of keeping it as <table>_osc_old");
        var resume = new Option<bool>("--resume") { Description = "Continue an interrupted --execute of the same ALTER from its checkpoint" };
        var cleanupOnAbort = new Option<bool>("--cleanup-on-abort") { Description = "On failure or Ctrl-C drop the shadow and bookkeeping table (PostgreSQL: and the slot and publication) instead of keeping them for --resume" };
        var foreignKeys = new Option<string>("--foreign-keys")
        {
            Description = "MySQL/MariaDB: refuse a table with foreign keys to or from it (default), or rebuild them: the table's own keys are "
                          + "recreated on the new table at the swap, referencing tables' keys are moved to the new table right after it (docs/operations.md)",
            DefaultValueFactory = _ => "refuse",
        };
        foreignKeys.AcceptOnlyFromAmong("refuse", "rebuild");
        var copySkipReplication = new Option<string>("--copy-skip-replication")
        {
            Description = "MariaDB: log the copy's writes marked skip_replication so osc's binlog stream is spared them (they stay in the binlog for replicas); "
                          + "auto (default) does so when every binlog reader is a replica known to apply marked events; off when an application writes the table under skip_replication (docs/operations.md)",
            DefaultValueFactory = _ => "auto",
        };
        copySkipReplication.AcceptOnlyFromAmong("auto", "on", "off");
        var deferIndexes = new Option<string>("--defer-indexes")
        {
            Description = "MySQL/MariaDB: build the shadow's plain secondary indexes after the copy (on: cheaper for the server) or fill them during it (off); "
                          + "auto (default) defers them unless a watched replica would replay the build as one long statement and fall behind (docs/operations.md)",
            DefaultValueFactory = _ => "auto",
        };
        deferIndexes.AcceptOnlyFromAmong("auto", "on", "off");
        var native = new Option<string>("--native")
        {
            Description = "auto (default): when the server makes this ALTER as a catalog change only (as `osc plan` finds on an empty copy), run it natively "
                          + "under the cut-over's lock timeout and retries, with no shadow table or copy; off: always rebuild online (docs/operations.md)",
            DefaultValueFactory = _ => "auto",
        };
        native.AcceptOnlyFromAmong("auto", "off");
        var controlSocket = new Option<string?>("--control-socket")
        {
            Description = "With --execute: take commands while the migration runs on this Unix socket (status, throttle, no-throttle, workers=N, chunk-time-millis=N, max-lag-millis=N, "
                          + "max-load=..., critical-load=..., postpone-cut-over, unpostpone, abort; `echo help | nc -U <path>`); default: osc.<host>-<port>.<schema>.<table>.sock "
                          + "in the temporary directory; none: no socket",
        };
        var command = new Command("alter", """
            Change a table online: a shadow table with the new schema, a chunked throttled copy, replay of concurrent
            changes from the binlog (MySQL) or a logical replication slot (PostgreSQL), verification and an atomic swap. Without --execute: a dry run that checks
            everything, creates the shadow table with your ALTER, and drops it again.
            """);
        connection.AddTo(command);
        command.Options.Add(table);
        command.Options.Add(alter);
        command.Options.Add(execute);
        command.Options.Add(json);
        foreach (Option option in new Option[] { workers, chunkTime, replicas, noDiscovery, maxLag, maxLoad, criticalLoad, maxWriteLatency, throttleFlag, postponeFlag, lockTimeout, cutoverAttempts, hooksPath, skipVerify, dropOld, resume, cleanupOnAbort, foreignKeys, copySkipReplication, deferIndexes, native, controlSocket })
        {
            command.Options.Add(option);
        }
        command.SetAction(async (result, interrupted) =>
        {
            bool asJson = result.GetValue(json);

            // Ctrl-C, SIGTERM, or the operator's abort through the control socket: each stops the run the same way.
            using var stopping = CancellationTokenSource.CreateLinkedTokenSource(interrupted);
            CancellationToken cancellationToken = stopping.Token;
            return await CommandGuard.RunAsync(console, asJson, async () =>
            {
                TableName tableName = TableName.Parse(result.GetValue(table)!);
                ConnectionTarget target = connection.Resolve(result, tableName, console.PromptSecret);
                if (result.GetValue(resume) && !result.GetValue(execute))
                {
                    throw new OscException("--resume continues an interrupted migration, which only --execute runs.", "Add --execute.");
                }

                ForeignKeyMethod foreignKeyMethod = result.GetValue(foreignKeys) == "rebuild" ? ForeignKeyMethod.Rebuild : ForeignKeyMethod.Refuse;
                bool? markCopy = result.GetValue(copySkipReplication) switch { "on" => true, "off" => false, _ => null };
                if (markCopy == true && target.Engine != DatabaseEngine.MySql)
                {
                    throw new OscException("--copy-skip-replication is for MariaDB: PostgreSQL's slot decodes the copy's writes whatever osc asks.",
                        "Leave --copy-skip-replication out.");
                }

                if (result.GetValue(deferIndexes) != "auto" && target.Engine != DatabaseEngine.MySql)
                {
                    throw new OscException("--defer-indexes is for MySQL/MariaDB: on PostgreSQL the plain indexes are always built after the copy, which a streaming standby replays as it goes.",
                        "Leave --defer-indexes out.");
                }

                if (foreignKeyMethod != ForeignKeyMethod.Refuse && target.Engine != DatabaseEngine.MySql)
                {
                    throw new OscException("--foreign-keys is for MySQL/MariaDB: PostgreSQL's swap moves foreign keys in both directions itself.",
                        "Leave --foreign-keys out.");
                }

                if (target.Engine == DatabaseEngine.MySql)
                {
                    // PostgreSQL's load names are checked by its engine before anything is created.
                    await ValidateLoadLimitsAsync(target, result.GetValue(maxLoad), result.GetValue(criticalLoad), cancellationToken);
                }

                HookRunner? hooks = result.GetValue(hooksPath) is { } hookDirectory
                    ? new HookRunner(hookDirectory, HookContext(target, tableName, result.GetValue(alter)!), console.Lines)
                    : null;
                // A missing directory is refused by a dry run too.
                hooks?.HooksOf(HookEvents.Startup);
                string[] listed = result.GetValue(replicas) ?? [];
                // A listed replica that cannot be measured would hold the copy paused: found out now, before anything is created.
                await ValidateListedReplicasAsync(target, listed, cancellationToken);
                CutoverOptions cutover = CutoverOptionsFrom(result.GetValue(lockTimeout), result.GetValue(cutoverAttempts));
                bool startupHooksRan = false;
                if (result.GetValue(native) == "auto" && !result.GetValue(resume)
                    && await NativeAlterFlow.PlanAsync(target, tableName, result.GetValue(alter)!, cancellationToken) is { } nativePlan)
                {
                    if (!result.GetValue(execute))
                    {
                        return NativeAlterFlow.DryRun(console, asJson, nativePlan, cutover);
                    }

                    if (await NativeAlterFlow.ExecuteAsync(console, asJson, nativePlan, target, tableName, cutover, result.GetValue(postponeFlag), hooks, cancellationToken) is { } code)
                    {
                        return code;
                    }

                    startupHooksRan = true;
                }

                if (result.GetValue(execute))
                {
                    // PostgreSQL needs no discovery: the primary's pg_stat_replication lists its standbys' lag.
                    DiscoveredReplicas? discovered = listed.Length > 0 || result.GetValue(noDiscovery) || target.Engine != DatabaseEngine.MySql
                        ? null
                        : await DiscoverReplicasAsync(console, target, asJson, cancellationToken);
                    IReadOnlyList<string> watched = discovered is null
                        ? listed.Select(r => ReplicaConnectionString(r, target)).ToList()
                        : discovered.Replicas.Select(MySql.Connection.MySqlConnections.BuildConnectionString).ToList();
                    var options = new OnlineAlterOptions
                    {
                        Workers = result.GetValue(workers),
                        ChunkTime = TimeSpan.FromMilliseconds(result.GetValue(chunkTime)),
                        ReplicaConnectionStrings = watched,
                        MaxLag = TimeSpan.FromMilliseconds(result.GetValue(maxLag)),
                        MaxLoad = result.GetValue(maxLoad),
                        CriticalLoad = result.GetValue(criticalLoad),
                        ThrottleFlagFile = result.GetValue(throttleFlag),
                        MaxWriteLatency = result.GetValue(maxWriteLatency) is > 0 and var ms ? TimeSpan.FromMilliseconds(ms) : null,
                        PostponeCutoverFlagFile = result.GetValue(postponeFlag),
                        Verify = !result.GetValue(skipVerify),
                        DropOldTable = result.GetValue(dropOld),
                        Cutover = cutover,
                        Resume = result.GetValue(resume),
                        CleanupOnAbort = result.GetValue(cleanupOnAbort),
                        ForeignKeys = foreignKeyMethod,
                        CopySkipReplication = markCopy,
                        DeferIndexes = result.GetValue(deferIndexes) switch { "on" => true, "off" => false, _ => null },
                        BeforeCutoverAsync = hooks is null ? null : token => hooks.RunAsync(HookEvents.BeforeCutover, null, token),
                    };
                    var controls = new MigrationControls(options);
                    options = options with { Controls = controls };
                    string? phase = null;
                    OnlineAlterProgress? latest = null;
                    var bar = new ProgressBar();
                    void Report(OnlineAlterProgress progress)
                    {
                        Volatile.Write(ref latest, progress);
                        if (asJson && progress.State != phase)
                        {
                            phase = progress.State;
                            console.WriteJsonLine(new { @event = "phase", phase, elapsedSeconds = Math.Round(progress.Elapsed.TotalSeconds, 1) });
                        }

                        ReportProgress(console, bar, progress, asJson);
                    }

                    await using ControlSocket? socket = await StartControlSocketAsync(console, asJson, result.GetValue(controlSocket), target, tableName,
                        new ControlCommands(controls, () => Status(Volatile.Read(ref latest)), () => _ = stopping.CancelAsync(), options.PostponeCutoverFlagFile), cancellationToken);
                    if (hooks is not null && !startupHooksRan)
                    {
                        await hooks.RunAsync(HookEvents.Startup, null, cancellationToken);
                    }

                    OnlineAlterResult done;
                    try
                    {
                        done = target.Engine == DatabaseEngine.MySql
                            ? await new MySqlOnlineAlter(target, options, Report) { DiscoveredReaders = discovered }.RunAsync(tableName, result.GetValue(alter)!, cancellationToken)
                            : await new PostgresOnlineAlter(target, options, Report).RunAsync(tableName, result.GetValue(alter)!, cancellationToken);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        if (hooks is not null)
                        {
                            await RunFailureHooksAsync(hooks, e, console);
                        }

                        if (e is MigrationKeptException kept)
                        {
                            throw WithResumeCommands(kept, target, tableName, result.GetValue(alter)!);
                        }

                        throw;
                    }
                    finally
                    {
                        console.EndProgressLine();
                    }

                    if (hooks is not null)
                    {
                        foreach (string failed in await hooks.RunReportingAsync(HookEvents.Success, new Dictionary<string, string>
                                 {
                                     ["OSC_METHOD"] = "rebuild",
                                     ["OSC_ELAPSED_SECONDS"] = done.Total.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture),
                                     ["OSC_ROWS_COPIED"] = done.RowsCopied.ToString(CultureInfo.InvariantCulture),
                                     ["OSC_CHANGES_APPLIED"] = done.ChangesApplied.ToString(CultureInfo.InvariantCulture),
                                     ["OSC_WRITES_BLOCKED_MILLIS"] = done.Cutover.WritesBlocked.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture),
                                     ["OSC_OLD_TABLE"] = result.GetValue(dropOld) ? "" : done.OldTable,
                                 }, CancellationToken.None))
                        {
                            console.Progress($"warning: {failed} The migration itself succeeded.");
                        }
                    }

                    if (asJson)
                    {
                        console.WriteJsonLine(new
                        {
                            @event = "done",
                            mode = "rebuild",
                            totalSeconds = Math.Round(done.Total.TotalSeconds, 2),
                            rowsCopied = done.RowsCopied,
                            resumedAfterRows = done.ResumedAfterRows,
                            changesApplied = done.ChangesApplied,
                            verifiedRows = done.Verification?.Rows,
                            repairedChunks = done.Verification?.RepairedChunks,
                            verificationWritesBlockedMillis = done.Verification?.WritesBlocked is { } held ? Math.Round(held.TotalMilliseconds, 1) : (double?)null,
                            writesBlockedMillis = Math.Round(done.Cutover.WritesBlocked.TotalMilliseconds, 1),
                            lockWaitMillis = done.Cutover.LockWait is { } wait ? Math.Round(wait.TotalMilliseconds, 1) : (double?)null,
                            // Where the time the table was held went, in order (engines that time their swap).
                            writesBlockedSteps = done.Cutover.Steps.Select(s => new { step = s.Name, millis = Math.Round(s.Elapsed.TotalMilliseconds, 1) }),
                            cutOverAttempts = done.Cutover.Attempts,
                            finishedAfterSwap = done.FinishedAfterSwap,
                            oldTable = result.GetValue(dropOld) ? null : done.OldTable,
                            notes = done.Notes.Concat(done.Cutover.Notes),
                        });
                    }
                    else
                    {
                        console.Ansi.MarkupLine(done.FinishedAfterSwap
                            ? $"[green]Done[/] in {done.Total.TotalSeconds:0.0} s: the interrupted run had swapped the tables; this run finished the steps after the swap"
                              + (result.GetValue(dropOld) ? "." : $"; the original is kept as {Markup.Escape(done.OldTable)}.")
                            : $"[green]Done[/] in {done.Total.TotalSeconds:0.0} s: "
                                                + (done.ResumedAfterRows is { } before ? $"resumed after {Count(before, "row")}, " : "")
                                                + $"{Count(done.RowsCopied, "row")} copied, {Count(done.ChangesApplied, "change")} replayed, "
                                                + (done.Verification is { } v
                                                    ? $"{Count(v.Rows, "row")} verified" + (v.WritesBlocked is { } held ? $" (writes held {held.TotalMilliseconds:0} ms for its snapshots), " : ", ")
                                                    : "verification skipped, ")
                                                + $"writes held {done.Cutover.WritesBlocked.TotalMilliseconds:0} ms at the swap"
                                                + (result.GetValue(dropOld) ? "." : $"; the original is kept as {Markup.Escape(done.OldTable)}."));
                        foreach (string note in done.Notes.Concat(done.Cutover.Notes))
                        {
                            console.Ansi.MarkupLine($"Note: {Markup.Escape(note)}");
                        }
                    }

                    return 0;
                }

                // Where --execute would take the operator's commands.
                string? socketPath = result.GetValue(controlSocket) is "none" ? null : result.GetValue(controlSocket) ?? ControlSocket.DefaultPath(target, tableName);
                if (target.Engine == DatabaseEngine.Postgres)
                {
                    PostgresAlterRehearsal pg = await PostgresAlterRehearsal.RunAsync(target, tableName, result.GetValue(alter)!, cancellationToken,
                        verify: !result.GetValue(skipVerify));
                    if (asJson)
                    {
                        console.WriteJson(new
                        {
                            dryRun = true,
                            mode = "rebuild",
                            controlSocket = socketPath,
                            table = pg.Facts.Table.ToString(),
                            serverVersion = pg.Facts.ServerVersion,
                            alter = pg.Alter,
                            estimatedRows = pg.Facts.EstimatedRows,
                            totalBytes = pg.Facts.TotalBytes,
                            key = new { name = pg.Facts.KeyName, columns = pg.Facts.Key, inShadow = pg.KeyInShadow },
                            shadowTable = pg.Facts.Names.Shadow,
                            oldTable = pg.Facts.Names.Old,
                            replicationSlot = pg.Replication.Slot,
                            publication = pg.Replication.Publication,
                            columns = pg.Mapping.Pairs.Select(p => new { source = p.Source, target = p.Target }),
                            droppedColumns = pg.DroppedColumns,
                            addedColumns = pg.AddedColumns,
                        });
                    }
                    else
                    {
                        Render(console.Ansi, pg);
                        console.Ansi.MarkupLine("Add [bold]--execute[/] to migrate" + (socketPath is null ? "." : $"; it takes commands on {Markup.Escape(socketPath)} while it runs."));
                    }

                    return 0;
                }

                AlterRehearsal rehearsal = await new MySqlAlterRehearsal(target).RunAsync(tableName, result.GetValue(alter)!, cancellationToken, foreignKeyMethod,
                    result.GetValue(workers), markCopy, verify: !result.GetValue(skipVerify));
                if (asJson)
                {
                    console.WriteJson(new
                    {
                        dryRun = true,
                        mode = "rebuild",
                        controlSocket = socketPath,
                        table = rehearsal.Facts.Table.ToString(),
                        serverVersion = rehearsal.Facts.ServerVersion,
                        alter = rehearsal.Alter,
                        estimatedRows = rehearsal.Facts.EstimatedRows,
                        totalBytes = rehearsal.Facts.TotalBytes,
                        key = new { name = rehearsal.Facts.KeyName, columns = rehearsal.Facts.Key, inShadow = rehearsal.KeyInShadow },
                        shadowTable = rehearsal.Facts.Names.Shadow,
                        oldTable = rehearsal.Facts.Names.Old,
                        columns = rehearsal.Mapping.Pairs.Select(p => new { source = p.Source, target = p.Target }),
                        droppedColumns = rehearsal.DroppedColumns,
                        addedColumns = rehearsal.AddedColumns,
                        shadowDefinition = rehearsal.ShadowDefinition,
                        foreignKeys = rehearsal.ForeignKeys.Select(f => new
                        {
                            side = f.Side,
                            table = f.Key.Table.ToString(),
                            name = f.Key.Name,
                            columns = f.Key.Columns,
                            references = f.Key.Referenced.ToString(),
                            referencedColumns = f.Key.ReferencedColumns,
                            onDelete = f.Key.OnDelete,
                            onUpdate = f.Key.OnUpdate,
                            newName = f.Key.RebuiltName,
                            plan = f.Plan,
                            statements = f.Statements,
                        }),
                        notes = rehearsal.Notes,
                    });
                }
                else
                {
                    Render(console.Ansi, rehearsal);
                    foreach (ForeignKeyAction action in rehearsal.ForeignKeys)
                    {
                        console.Ansi.MarkupLine($"Foreign key [bold]{Markup.Escape(action.Key.ToString())}[/]: {Markup.Escape(action.Plan)}");
                        foreach (string sql in action.Statements)
                        {
                            console.Ansi.MarkupLine($"    {Markup.Escape(sql)}");
                        }
                    }

                    foreach (string note in rehearsal.Notes)
                    {
                        console.Ansi.MarkupLine($"Note: {Markup.Escape(note)}");
                    }

                    console.Ansi.MarkupLine("Add [bold]--execute[/] to migrate" + (socketPath is null ? "." : $"; it takes commands on {Markup.Escape(socketPath)} while it runs."));
                }

                return 0;
            }, cancellationToken);
        });
        return command;
    }

    /// <summary>Listens for the operator's commands unless told not to; says where, for people and scripts.</summary>
    private static async Task<ControlSocket?> StartControlSocketAsync(OscConsole console, bool asJson, string? requested, ConnectionTarget target, TableName table,
        ControlCommands commands, CancellationToken cancellationToken)
    {
        if (requested == "none")
        {
            return null;
        }

        string path = requested ?? ControlSocket.DefaultPath(target, table);
        ControlSocket socket = await ControlSocket.StartAsync(path, async (line, token) =>
        {
            string answer = await commands.ExecuteAsync(line, token);
            string first = answer.Split('\n')[0];
            if (asJson)
            {
                console.WriteJsonLine(new { @event = "control", command = line.Trim(), answer = first });
            }
            else
            {
                console.Progress($"control: {line.Trim()}: {first}");
            }

            return answer;
        }, cancellationToken);
        if (asJson)
        {
            console.WriteJsonLine(new { @event = "control-socket", path = socket.Path });
        }
        else
        {
            console.Progress($"Commands: echo help | nc -U {socket.Path}");
        }

        return socket;
    }

    /// <summary>The status command's first line: the last progress report, as the progress bar shows it without the bar.</summary>
    private static string Status(OnlineAlterProgress? p) => p is null
        ? "state starting"
        : string.Create(CultureInfo.InvariantCulture,
            $"state {p.State}; rows copied {p.RowsCopied:N0} of ~{p.EstimatedRows:N0}; changes replayed {p.ChangesApplied:N0}; backlog {p.Backlog:N0}; "
            + $"replica lag {(p.ReplicaLagMillis is { } lag ? double.IsFinite(lag) ? $"{lag:0} ms" : "unknown" : "not watched")}; "
            + $"paused {p.Throttled ?? "no"}; elapsed {p.Elapsed.TotalSeconds:0.0} s");

    /// <summary>What every hook is told about the migration.</summary>
    private static Dictionary<string, string> HookContext(ConnectionTarget target, TableName table, string alter) => new()
    {
        ["OSC_ENGINE"] = target.Engine == DatabaseEngine.MySql ? "mysql" : "postgres",
        ["OSC_HOST"] = target.Host,
        ["OSC_PORT"] = target.Port.ToString(CultureInfo.InvariantCulture),
        ["OSC_DATABASE"] = target.Database ?? "",
        ["OSC_SCHEMA"] = table.Schema ?? (target.Engine == DatabaseEngine.MySql ? target.Database ?? "" : "public"),
        ["OSC_TABLE"] = table.Name,
        ["OSC_ALTER"] = alter,
    };

    /// <summary>Runs the failure hooks; whatever they do, the failure itself goes on unchanged.</summary>
    internal static async Task RunFailureHooksAsync(HookRunner hooks, Exception failure, OscConsole console)
    {
        // The operator's Ctrl-C has cancelled the run, not these: they get a few minutes of their own.
        using var bounded = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            foreach (string failed in await hooks.RunReportingAsync(HookEvents.Failure, new Dictionary<string, string> { ["OSC_ERROR"] = failure.Message }, bounded.Token))
            {
                console.Progress($"warning: {failed}");
            }
        }
        catch (Exception e) when (e is OscException or OperationCanceledException or System.ComponentModel.Win32Exception)
        {
            console.Progress($"warning: the failure hooks did not run to the end: {e.Message}");
        }
    }

    /// <summary>"1 row", "2,000 rows".</summary>
    private static string Count(long n, string noun) => string.Create(CultureInfo.InvariantCulture, $"{n:N0} {noun}{(n == 1 ? "" : "s")}");

    private static void ReportProgress(OscConsole console, ProgressBar bar, OnlineAlterProgress p, bool asJson)
    {
        if (asJson)
        {
            console.WriteJsonLine(new
            {
                @event = "progress",
                state = p.State,
                rowsCopied = p.RowsCopied,
                estimatedRows = p.EstimatedRows,
                changesApplied = p.ChangesApplied,
                backlog = p.Backlog,
                replicaLagMillis = p.ReplicaLagMillis is { } lag && double.IsFinite(lag) ? Math.Round(lag, 1) : (double?)null,
                throttled = p.Throttled,
                elapsedSeconds = Math.Round(p.Elapsed.TotalSeconds, 1),
            });
            return;
        }

        console.ProgressInPlace(bar.Format(p));
    }

    /// <summary>The kept-for-resume error with the exact commands that resume the run or remove what it kept.</summary>
    private static MigrationKeptException WithResumeCommands(MigrationKeptException e, ConnectionTarget target, TableName table, string alter)
    {
        string quotedAlter = "'" + alter.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        string hint = (e.Hint is null ? "" : e.Hint + Environment.NewLine)
                      + $"Kept for --resume: {string.Join(", ", e.KeptTables)}"
                      + (e.Swapped ? " (with what is left after the swap)." : " (with a checkpoint)" + (e.Cancelled ? "." : "; the original table is untouched."))
                      + $"{Environment.NewLine}  resume:  osc alter {target.Redacted} --table {table} --alter {quotedAlter} --execute --resume"
                      + $"{Environment.NewLine}  or drop: osc cleanup {target.Redacted} --table {table}";
        return new MigrationKeptException(e.Message, hint, e.Cancelled, e.KeptTables, e.InnerException) { Swapped = e.Swapped };
    }

    private static CutoverOptions CutoverOptionsFrom(int lockSeconds, int attempts)
    {
        // Draining under the lock gets as long as the lock wait: together they bound what a query waits on us.
        return new CutoverOptions { LockTimeout = TimeSpan.FromSeconds(lockSeconds), DrainTimeout = TimeSpan.FromSeconds(lockSeconds), Attempts = attempts };
    }

    /// <summary>A misspelled status variable is an error now, not a copy paused for ever.</summary>
    private static async Task ValidateLoadLimitsAsync(ConnectionTarget target, string? maxLoad, string? criticalLoad, CancellationToken cancellationToken)
    {
        string connectionString = MySql.Connection.MySqlConnections.BuildConnectionString(target);
        foreach ((string? spec, string option) in new[] { (maxLoad, "--max-load"), (criticalLoad, "--critical-load") })
        {
            if (spec is not null)
            {
                await MySqlThrottleSignals.ValidateLoadAsync(connectionString, spec, option, cancellationToken);
            }
        }
    }

    /// <summary>The primary's replicas, found from the primary and reported, with a note for each that could not be found or reached.</summary>
    private static async Task<DiscoveredReplicas> DiscoverReplicasAsync(OscConsole console, ConnectionTarget primary, bool asJson, CancellationToken cancellationToken)
    {
        DiscoveredReplicas found = await MySqlReplicaDiscovery.DiscoverAsync(primary, cancellationToken);
        var watched = found.Replicas.Select(r => $"{r.Host}:{r.Port}").ToList();
        const string Fix = "list replicas with --replica, or set report_host and report_port on them";
        if (asJson)
        {
            console.WriteJsonLine(new { @event = "replicas", discovered = true, watched, notes = found.Notes, fix = found.Notes.Count > 0 ? Fix : null });
        }
        else
        {
            console.Progress(watched.Count > 0 ? $"Replica lag watched on {string.Join(", ", watched)} (discovered from the primary)." : "No replicas discovered: replica lag is not watched.");
            foreach (string note in found.Notes)
            {
                console.Progress($"note: {note}; its lag is not watched: {Fix}.");
            }
        }

        return found;
    }

    /// <summary>A replica given as a URI, with the primary's credentials when the URI has none.</summary>
    /// <summary>Each --replica answers with the primary's credentials, and is a replica (the engines check how).</summary>
    private static Task ValidateListedReplicasAsync(ConnectionTarget primary, string[] listed, CancellationToken cancellationToken)
    {
        if (listed.Length == 0)
        {
            return Task.CompletedTask;
        }

        var replicas = listed.Select(uri => (uri, ReplicaTarget(uri, primary))).ToList();
        return primary.Engine == DatabaseEngine.MySql
            ? MySqlReplicaDiscovery.CheckListedAsync(primary, replicas, cancellationToken)
            : Postgres.Throttle.PostgresThrottleSignals.CheckListedStandbysAsync(replicas, cancellationToken);
    }

    private static ConnectionTarget ReplicaTarget(string uri, ConnectionTarget primary)
    {
        ConnectionTarget replica = ConnectionTarget.ParseUri(uri);
        return replica with { User = replica.User ?? primary.User, Password = replica.Password ?? primary.Password, Database = primary.Database };
    }

    private static string ReplicaConnectionString(string uri, ConnectionTarget primary)
    {
        ConnectionTarget replica = ReplicaTarget(uri, primary);
        return primary.Engine == DatabaseEngine.MySql
            ? MySql.Connection.MySqlConnections.BuildConnectionString(replica)
            : Postgres.Connection.PostgresConnections.BuildConnectionString(replica);
    }

    private static void Render(IAnsiConsole console, PostgresAlterRehearsal r) => RenderRehearsal(console,
        $"PostgreSQL {r.Facts.ServerVersion}", r.Alter, r.Facts.Table, r.Facts.EstimatedRows, r.Facts.TotalBytes, r.Facts.KeyName, r.Facts.Key,
        "wal_level logical; a free slot and WAL sender; REPLICATION; usable key; plain table; no leftovers",
        r.Facts.Names, $"publication and logical slot {r.Replication.Slot} (pgoutput), dropped at the end", r.Mapping, r.DroppedColumns, r.AddedColumns);

    private static void Render(IAnsiConsole console, AlterRehearsal r) => RenderRehearsal(console,
        r.Facts.ServerVersion, r.Alter, r.Facts.Table, r.Facts.EstimatedRows, r.Facts.TotalBytes, r.Facts.KeyName, r.Facts.Key,
        "binlog on, ROW, FULL; InnoDB; usable key; no triggers; "
        + (r.ForeignKeys.Count == 0 ? "no foreign keys" : "foreign keys rehearsed, none cascading into the table") + "; no leftovers",
        r.Facts.Names, null, r.Mapping, r.DroppedColumns, r.AddedColumns);

    /// <summary>The dry run's report, the same on both engines but for the checks made and the change stream.</summary>
    private static void RenderRehearsal(IAnsiConsole console, string server, string alter, TableName table, long rows, long bytes, string keyName,
        IReadOnlyList<string> key, string checks, ShadowNames names, string? stream, ColumnMapping mapping, IReadOnlyList<string> dropped, IReadOnlyList<string> added)
    {
        console.MarkupLine($"[bold]Dry run[/] of an online ALTER of [bold]{Markup.Escape(table.ToString())}[/] on {Markup.Escape(server)}: nothing was changed.");
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        grid.AddRow("ALTER", Markup.Escape(alter));
        grid.AddRow("Table", Markup.Escape($"about {rows:N0} rows, {bytes / (1024.0 * 1024.0):0.0} MiB"));
        grid.AddRow("Rows matched by", Markup.Escape($"{keyName} ({string.Join(", ", key)})"));
        grid.AddRow("Checks", Markup.Escape(checks) + ": [green]passed[/]");
        grid.AddRow("Shadow table", Markup.Escape($"{names.Shadow}: created with the ALTER, then dropped"));
        if (stream is not null)
        {
            grid.AddRow("Change stream", Markup.Escape(stream));
        }

        grid.AddRow("Columns copied", Markup.Escape(string.Join(", ", mapping.Pairs.Select(p => p.Source == p.Target ? p.Source : $"{p.Source} -> {p.Target}"))));
        grid.AddRow("Columns dropped", Markup.Escape(dropped.Count == 0 ? "none" : string.Join(", ", dropped)));
        grid.AddRow("Columns added", Markup.Escape(added.Count == 0 ? "none" : string.Join(", ", added) + " (their defaults)"));
        grid.AddRow("After the swap", Markup.Escape($"the original is kept as {names.Old}"));
        console.Write(grid);
    }
}
