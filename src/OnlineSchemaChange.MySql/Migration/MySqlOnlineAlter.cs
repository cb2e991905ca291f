using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.MySql.Apply;
using OnlineSchemaChange.MySql.Checkpoint;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Copy;
using OnlineSchemaChange.MySql.Cutover;
using OnlineSchemaChange.MySql.Protocol;
using OnlineSchemaChange.MySql.Replication;
using OnlineSchemaChange.MySql.Schema;
using OnlineSchemaChange.MySql.Throttle;
using OnlineSchemaChange.MySql.Verify;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>
/// The online ALTER on MySQL/MariaDB, end to end: checks, shadow, binlog replay started at the position taken before
/// the copy, heartbeat and throttling, the chunked copy, verification, and the atomic swap, with a checkpoint saved
/// every few seconds and at each phase change. When it stops after its first checkpoint (a failure, Ctrl-C, SIGTERM)
/// the shadow and bookkeeping table are kept for --resume, unless asked to clean up; a verification mismatch or a
/// failure before the first checkpoint keeps nothing, since nothing of it could be resumed. Either way every lock is
/// released, every connection closed, and the original is left as it was.
/// </summary>
public sealed class MySqlOnlineAlter(ConnectionTarget target, OnlineAlterOptions options, Action<OnlineAlterProgress> report)
{
    /// <summary>
    /// The primary's binlog readers as the caller discovered them (osc alter does, to watch their lag), so that deciding
    /// whether to mark the copy's writes does not ask the primary again.
    /// </summary>
    public DiscoveredReplicas? DiscoveredReaders { get; init; }

    public async Task<OnlineAlterResult> RunAsync(TableName table, string alter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var clock = Stopwatch.StartNew();
        AlterStatement statement = AlterStatement.Parse(alter, table, SqlDialect.MySql);
        string schema = table.Schema ?? target.Database ?? throw new OscException(
            $"No database given for table {table.Name}.", "Name it in the URI (mysql://host/db), with --database, or as --table db.table.");
        var original = new TableName(schema, table.Name);
        string connectionString = MySqlConnections.BuildConnectionString(target with { Database = schema });

        await using MySqlConnection connection = await MySqlConnections.OpenAsync(target with { Database = schema }, cancellationToken);
        // One run per table at a time: a resume started while the interrupted run is in fact still going would
        // otherwise write into the same shadow.
        await MySqlLeftoverSessions.HoldRunLockAsync(connection, original, null, cancellationToken);
        var names = new ShadowNames(table.Name, MySqlInspector.MaxIdentifierLength);
        var log = original with { Name = names.Log };
        var store = new MySqlCheckpointStore(connectionString, log);
        var resume = new MySqlResume(connection, original, names, store);
        IReadOnlyList<string> notes = [];
        if (options.Resume)
        {
            await resume.EnsureLeftoversAsync(cancellationToken);
            notes = await MySqlLeftoverSessions.EndAsync(connection, original with { Name = names.Shadow }, cancellationToken);
            await MySqlForeignKeys.RecoverKilledSwapAsync(connection, original, names, cancellationToken);
        }

        MySqlTableFacts facts = await new MySqlInspector(connection).InspectAsync(original, statement, cancellationToken, resuming: options.Resume,
            foreignKeys: options.ForeignKeys);
        MigrationDigest migration = MigrationDigest.Compute(original.ToString(), Definition(facts), statement, SqlDialect.MySql);
        // Whether the copy's writes are marked so that the stream is not sent them (MariaDB, CopyEventFilter); decided
        // before anything is created, so a refusal leaves nothing behind.
        CopyEventFilterDecision copyEvents = await CopyEventFilter.DecideAsync(connection, target, options.CopySkipReplication, cancellationToken,
            DiscoveredReaders);
        if (copyEvents.Note is not null)
        {
            notes = [.. notes, copyEvents.Note];
        }

        MigrationCheckpoint? resumed = options.Resume ? await resume.LoadAsync(migration, cancellationToken) : null;
        // The definition the shadow is built from, which the table must keep until the swap (MySqlTableChangeGuard).
        string baseline = await MySqlTableChangeGuard.ReadDefinitionAsync(connection, original, cancellationToken)
                          ?? throw new OscException($"Table {original} does not exist.", "Check the database and table names.");
        var changeGuard = new MySqlTableChangeGuard(connectionString, original, names, baseline);
        ShadowTable shadow = resumed is null
            ? await ShadowTable.CreateAsync(connection, facts, statement, cancellationToken)
            : await ShadowTable.OpenAsync(connection, facts, statement, cancellationToken);
        try
        {
            // A resumed run too: its first run may have verified, or failed verification.
            await shadow.RefuseUnverifiedUniqueKeyAsync(connection, original, options.Verify, cancellationToken);
        }
        catch (Exception) when (resumed is null)
        {
            await shadow.DropAsync(connection);
            throw;
        }

        bool swapped = false, keep = false;
        Exception? failure = null;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task feeding = Task.CompletedTask, applying = Task.CompletedTask;
        BinlogClient? client = null;
        Checkpointer? checkpointer = null;
        var serverXa = new ServerPreparedXa(connectionString);
        MySqlChangeWriter? writer = null;

        async Task StopReplayAsync()
        {
            await stop.CancelAsync();
            await Task.WhenAll(feeding, applying).ContinueWith(_ => { }, TaskScheduler.Default);
            if (client is not null)
            {
                await client.DisposeAsync();
                client = null;
            }
        }

        try
        {
            await MySqlHeartbeat.CreateLogTableAsync(connectionString, log, cancellationToken);
            await facts.ForeignKeys.RecordRestoreAsync(connection, log, cancellationToken);
            if (resumed is null)
            {
                // Built after the copy, which then costs the server far less (a resumed run finds them saved), unless
                // that would hold the replicas back for the whole build.
                (bool defer, string? indexNote) = await MySqlDeferredIndexes.DecideAsync(connection, shadow.Table, options.DeferIndexes,
                    options.ReplicaConnectionStrings.Count, names.ReplayKey, cancellationToken);
                if (defer)
                {
                    await MySqlDeferredIndexes.DeferAsync(connection, shadow.Table, log, names.ReplayKey,
                        await shadow.UniqueKeysBuildableAfterCopyAsync(connection, original, cancellationToken), cancellationToken);
                }
                else if (indexNote is not null)
                {
                    notes = [.. notes, indexNote];
                }
            }

            await using var heartbeat = MySqlHeartbeat.Create(connectionString, log, TimeSpan.FromMilliseconds(100));
            heartbeat.Start();

            // Replay starts at a position taken before the first chunk is read, so every later commit is replayed; a
            // resumed run starts at its checkpoint's, up to which every change is already in the shadow.
            MySqlBinlogPosition start = resumed is null ? await MySqlBinlogPosition.CurrentAsync(connection, cancellationToken) : MySqlBinlogPosition.Parse(resumed.Position);
            // A change between reading the definition and the replay's start is not in the stream: look once now.
            await changeGuard.CheckNowAsync("before the replay's start", cancellationToken);
            uint serverId = options.ServerId ?? await StreamServerId.PickFreeAsync(connection, cancellationToken);
            client = new BinlogClient(new BinlogClientOptions(new MySqlEndpoint(target.Host, target.Port, target.User ?? Environment.UserName, target.Password ?? ""))
            {
                Start = new BinlogStart.FilePosition(start.File, (uint)start.Position),
                Tables = new HashSet<string> { $"{schema}.{table.Name}" },
                ServerId = serverId,
                SkipMarkedEvents = copyEvents.MarkCopy,
            });
            var keyIndexes = facts.Key.Select(k => facts.Columns.ToList().FindIndex(c => c.Name.Equals(k, StringComparison.OrdinalIgnoreCase))).ToList();
            var originalKey = new MySqlKeyPredicate(facts.Key, facts.KeyName);
            var shadowKey = new MySqlKeyPredicate(shadow.KeyInShadow);
            var applierOptions = new ApplierOptions();
            Channel<ReplicationMessage> changes = ReplayChannel.Create(applierOptions);
            var fence = new CopyFence();
            // A fresh run leaves changes ahead of the copy to the copy; a resumed one may find rows of the last run there.
            CopyFrontier? frontier = resumed is null ? new CopyFrontier(fence) : null;
            writer = new MySqlChangeWriter(connectionString, shadow.Table, shadowKey, shadow.Mapping);
            var applier = new ChangeApplier(writer, applierOptions, TimeProvider.System, fence, frontier);
            var preparedXa = new PreparedXaTransactions(PreparedXaTransactions.DefaultMaxHeldRows, serverXa.WaitUntilCommittedAsync);
            feeding = new MySqlChangeFeed(client.ReadEventsAsync(stop.Token), schema, table.Name, keyIndexes, preparedXa, changeGuard).RunAsync(changes.Writer, stop.Token);
            applying = applier.RunAsync(changes.Reader, stop.Token);
            Task replayFailed = WatchReplayAsync(feeding, applying);
            if (resumed is null)
            {
                // An XA transaction prepared before the replay's start has its rows before it in the binlog: it must
                // not be pending when the copy begins (a resumed run's start never passes a pending one of ours).
                Task none = serverXa.EnsureNoneFromBeforeTheStreamAsync(preparedXa, original.ToString(), PreparedXaWait, cancellationToken,
                    waiting => report(new OnlineAlterProgress("waiting for prepared XA transactions", 0, facts.EstimatedRows, 0, waiting, clock.Elapsed)));
                if (await Task.WhenAny(none, replayFailed) == replayFailed)
                {
                    await replayFailed;
                }

                await none;
            }

            // From the first checkpoint on, an interrupted run can be resumed.
            checkpointer = new Checkpointer(store, migration, applier, start, resumed, options.CheckpointInterval, TimeProvider.System);
            await checkpointer.SaveAsync(cancellationToken);
            checkpointer.Start();

            // Declared first, so that it closes after the throttler whose replica-lag signals read it.
            await using var primaryClock = new MySqlPrimaryClock(connectionString);
            await using Throttler throttler = BuildThrottler(connectionString, log, heartbeat, primaryClock);
            await throttler.CheckAsync(cancellationToken);
            throttler.Start();
            (int workers, string? workersNote) = await MySqlCopyWorkers.ChooseAsync(connection, shadow.Table, options.Workers, cancellationToken);
            if (workersNote is not null)
            {
                notes = [.. notes, workersNote];
            }

            // With a control socket, room for an operator to raise the workers, unless the AUTO-INC lock holds them to one.
            int copyTasks = options.Controls is null ? workers : MigrationControls.CopyTasks(workers, canGrow: workersNote is null);
            var copySource = new MySqlCopySource(connectionString, original, shadow.Table, originalKey, shadow.Mapping, log, copyEvents.MarkCopy);
            var copier = new KeysetCopier(new FencedCopySource(new WidthChunkedCopySource(copySource, copySource), fence),
                options.NewChunkSizer(), throttler, copyTasks, frontier)
            {
                ActiveWorkers = options.Controls?.BindCopy(workers, copyTasks),
            };
            long copiedBefore = checkpointer.RowsCopiedBefore;
            void Report(string state) => report(new OnlineAlterProgress(state, copiedBefore + copier.RowsCopied, facts.EstimatedRows, applier.ChangesReceived,
                copier.Finished ? null : throttler.Reason, clock.Elapsed)
            {
                Backlog = applier.Backlog,
                ReplicaLagMillis = throttler.ReplicaLagMillis,
            });

            async Task DrainAsync(ReplicationPosition target, CancellationToken token)
            {
                Task caughtUp = applier.WaitForAsync(target, token);
                if (await Task.WhenAny(caughtUp, replayFailed) == replayFailed)
                {
                    await replayFailed;
                }

                await caughtUp;
            }

            var phases = new EnginePhases
            {
                BuildDeferredIndexesAsync = (reportBuilding, token) =>
                    MySqlDeferredIndexes.BuildAsync(connection, shadow.Table, log, TimeSpan.FromSeconds(60), reportBuilding,
                        async catchUpToken => await DrainAsync(await MySqlBinlogPosition.CurrentAsync(connection, catchUpToken), catchUpToken), token),
                CatchUpAsync = async token => await DrainAsync(await MySqlBinlogPosition.CurrentAsync(connection, token), token),
                VerifyAsync = token => new MySqlVerifier(connectionString, original, shadow.Table, originalKey, shadowKey, shadow.Mapping,
                    shadow.ColumnTypes, DrainAsync)
                {
                    LockTimeout = options.Cutover.LockTimeout,
                    DrainTimeout = options.Cutover.DrainTimeout,
                    LockAttempts = options.Cutover.Attempts,
                }.RunAsync(token),
                CutOverAsync = async token =>
                {
                    CutoverResult result = await new MySqlCutover(connectionString, original, facts.Names, DrainAsync, options.Cutover,
                        facts.ForeignKeys.ForCutover(shadow.Table, shadow.Mapping), preparedXa.DescribeHeld).RunAsync(token);
                    swapped = true;
                    changeGuard.Disarm();
                    return result;
                },
                AfterSwapAsync = facts.ForeignKeys.Any
                    ? async (reportPhase, _) =>
                    {
                        reportPhase("rebuilding foreign keys");
                        await facts.ForeignKeys.AfterSwapAsync(connectionString, facts.Names, shadow.Mapping, options.Cutover);
                    }
                    : null,
            };
            (VerificationResult? verification, CutoverResult cutover) =
                await MigrationPhases.RunAsync(phases, copier, checkpointer, resumed, replayFailed, options, Report, stop.Token);

            if (options.DropOldTable)
            {
                await MySqlForeignKeys.EnsureUnreferencedAsync(connection, original with { Name = facts.Names.Old }, CancellationToken.None);
                await new MySqlCatalog(connection).ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(original with { Name = facts.Names.Old })}", CancellationToken.None);
            }

            return new OnlineAlterResult(clock.Elapsed, copier.RowsCopied, applier.ChangesReceived, verification, cutover, facts.Names.Old)
            {
                ResumedAfterRows = resumed is null ? null : copiedBefore,
                Notes = notes,
            };
        }
        catch (Exception e) when ((failure = e) is null)
        {
            // Never entered: the filter only notes the failure for the cleanup below, which may fail in turn.
            throw;
        }
        catch (Exception e) when (!swapped && !options.CleanupOnAbort && checkpointer?.LastSaved is not null && !MigrationSteps.EndsTheMigration(e))
        {
            if (await changeGuard.FindChangeAsync(e, cancellationToken) is { } changed)
            {
                throw changed;
            }

            keep = true;
            await StopReplayAsync();

            throw await MigrationSteps.KeepBeforeSwapAsync(checkpointer, MySqlConnectionLoss.Explain(e, Server), cancellationToken.IsCancellationRequested,
                original.ToString(), [shadow.Table.ToString(), log.ToString()]);
        }
        catch (Exception e) when (e is not OscException && MySqlConnectionLoss.Is(e))
        {
            throw MySqlConnectionLoss.Explain(e, Server);
        }
        catch (Exception e) when (!swapped && e is not OscException)
        {
            if (await changeGuard.FindChangeAsync(e, cancellationToken) is { } changed)
            {
                throw changed;
            }

            throw;
        }
        finally
        {
            await StopReplayAsync();
            if (writer is not null)
            {
                // After the replay stopped: no batch is being written on its session.
                await writer.DisposeAsync();
            }

            await serverXa.DisposeAsync();
            if (checkpointer is not null)
            {
                await checkpointer.DisposeAsync();
            }

            if (!keep)
            {
                try
                {
                    using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    var catalog = new MySqlCatalog(connection);
                    await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(log)}", cleanup.Token);
                    if (!swapped)
                    {
                        await shadow.DropAsync(connection);
                    }
                }
                catch (Exception e) when (e is MySqlException or OperationCanceledException || MySqlConnectionLoss.Is(e))
                {
#pragma warning disable CA2219 // the exception in flight, if any, is this one's inner exception and its message begins this one's
                    throw MigrationSteps.CleanupFailed(failure, failure is null ? null : MySqlConnectionLoss.Explain(failure, Server).Message, e,
                        swapped ? log.ToString() : $"{shadow.Table}, {log}", swapped, original.ToString());
#pragma warning restore CA2219
                }
            }
        }
    }

    private string Server => $"{target.Host}:{target.Port}";

    /// <summary>How long a fresh run waits for XA transactions prepared before its replay's start to finish.</summary>
    private static readonly TimeSpan PreparedXaWait = TimeSpan.FromSeconds(30);

    /// <summary>What the digest records of the table: its columns and key, so a resume notices the table changed.</summary>
    private static string Definition(MySqlTableFacts facts) =>
        string.Join(", ", facts.Columns.Select(c => $"{c.Name} {c.ColumnType}{(c.Nullable ? " NULL" : " NOT NULL")}{(c.Generated ? " GENERATED" : "")}"))
        + "; key " + string.Join(", ", facts.Key);

    /// <summary>Ends only in an error: the replay's own, or that it stopped, which must never happen mid-migration.</summary>
    private static async Task WatchReplayAsync(Task feeding, Task applying)
    {
        await await Task.WhenAny(feeding, applying);
        throw new OscException("The binlog replay stopped unexpectedly.", "Check the server's binary logs are still available and the replication user's grants.");
    }

    private Throttler BuildThrottler(string connectionString, TableName log, TimedWriteLoop heartbeat, MySqlPrimaryClock primaryClock) =>
        MigrationSteps.BuildThrottler(options, heartbeat,
            options.ReplicaConnectionStrings.Select(r => MySqlThrottleSignals.ReplicaLag(primaryClock,
                new MySqlConnectionStringBuilder(r) { Database = log.Schema }.ConnectionString, log, options.MaxLag)),
            (spec, option) => MySqlThrottleSignals.Load(connectionString, spec, option));
}
