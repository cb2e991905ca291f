using System.Diagnostics;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Postgres.Apply;
using OnlineSchemaChange.Postgres.Checkpoint;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Copy;
using OnlineSchemaChange.Postgres.Cutover;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;
using OnlineSchemaChange.Postgres.Throttle;
using OnlineSchemaChange.Postgres.Verify;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// The online ALTER on PostgreSQL, end to end, without triggers: checks, shadow, a publication and permanent logical
/// slot created before the copy, the slot's stream replayed into the shadow while the chunked, throttled copy runs,
/// verification, and the swap, with a checkpoint saved every few seconds and at each phase change. When it stops
/// after its first checkpoint (a failure, Ctrl-C, SIGTERM) the shadow, bookkeeping table, slot and publication are
/// kept for --resume, unless asked to clean up; a verification mismatch or a failure before the first checkpoint
/// keeps nothing. On success the slot, publication and bookkeeping table are removed. Either way the original is
/// left as it was (or swapped whole), every lock released and every connection closed.
/// </summary>
public sealed class PostgresOnlineAlter(ConnectionTarget target, OnlineAlterOptions options, Action<OnlineAlterProgress> report)
{
    public async Task<OnlineAlterResult> RunAsync(TableName table, string alter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var clock = Stopwatch.StartNew();
        AlterStatement statement = AlterStatement.Parse(alter, table, SqlDialect.Postgres);
        // Pooled: every copy chunk and replay batch opens a connection, and a fresh one costs a SCRAM handshake.
        string connectionString = new NpgsqlConnectionStringBuilder(PostgresConnections.BuildConnectionString(target)) { Pooling = true }.ConnectionString;

        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        string schema = table.Schema ?? await new PostgresCatalog(connection).ScalarAsync<string>("SELECT current_schema()", cancellationToken);
        var original = new TableName(schema, table.Name);
        var names = new PostgresReplicationNames(connection.Database, original);
        // One run per table at a time: a resume started while the interrupted run is in fact still going would
        // otherwise stream from the same slot into the same shadow.
        await PostgresLeftoverSessions.HoldRunLockAsync(connection, names, null, cancellationToken);
        var shadowNames = new ShadowNames(table.Name, PostgresInspector.MaxIdentifierLength);
        var store = new PostgresCheckpointStore(connectionString, original with { Name = shadowNames.Log });
        var resume = new PostgresResume(connection, original, shadowNames, names, store);
        if (options.Resume && await PostgresAfterSwap.LoadAsync(store, cancellationToken) is { } afterSwap)
        {
            return await FinishAfterSwapAsync(connectionString, original, shadowNames, names, store, afterSwap, statement, clock, cancellationToken);
        }

        IReadOnlyList<string> notes = [];
        if (options.Resume)
        {
            await resume.EnsureLeftoversAsync(cancellationToken);
            notes = await PostgresLeftoverSessions.EndAsync(connection, original with { Name = shadowNames.Shadow }, cancellationToken);
        }

        PostgresTableFacts facts = await new PostgresInspector(connection).InspectAsync(original, statement, cancellationToken, resuming: options.Resume);
        MigrationDigest migration = MigrationDigest.Compute(original.ToString(), Definition(facts), statement, SqlDialect.Postgres);
        MigrationCheckpoint? resumed = null;
        if (options.Resume)
        {
            resumed = await resume.LoadAsync(migration, cancellationToken);
        }
        else if (await PostgresReplicationSlot.FindLeftoverAsync(connection, names, cancellationToken) is { } leftover)
        {
            throw PostgresReplicationSlot.Leftover(leftover, names);
        }

        // Started once the bookkeeping table exists; --max-write-latency-millis times it, and listed standbys' lag is read from it.
        await using TimedWriteLoop? heartbeat = options.MaxWriteLatency is null && options.ReplicaConnectionStrings.Count == 0
            ? null
            : PostgresHeartbeat.Create(connectionString, original with { Name = shadowNames.Log }, TimeSpan.FromMilliseconds(100));
        // Built before anything is created, so a bad --max-load is refused with nothing to clean up.
        await using Throttler throttler = BuildThrottler(connectionString, original with { Name = shadowNames.Log }, heartbeat);
        // The definition the shadow is built from, which the swap checks the table still has (PostgresTableDefinition).
        string definitionAtStart = await PostgresTableDefinition.ReadAsync(connection, facts.Oid, cancellationToken);
        PostgresShadowTable shadow;
        if (resumed is null)
        {
            shadow = await PostgresShadowTable.CreateAsync(connection, facts, statement, cancellationToken);
        }
        else
        {
            string layout = await store.LoadLayoutAsync(cancellationToken) ?? throw new OscException(
                $"{store.Table} holds no record of the shadow's layout.", $"Remove the leftovers with `osc cleanup <connection> --table {original}` and start again.");
            shadow = await PostgresShadowTable.OpenAsync(connection, facts, statement, layout, cancellationToken);
            // A killed run's walsender may still hold the slot.
            await PostgresReplicationSlot.ReleaseAsync(connection, names.Slot, "resume again", cancellationToken);
        }

        try
        {
            // A resumed run too: its first run may have verified, or failed verification.
            await shadow.RefuseUnverifiedUniqueKeyAsync(connection, facts, options.Verify, cancellationToken);
        }
        catch (Exception) when (resumed is null)
        {
            await shadow.DropAsync(connection);
            throw;
        }

        bool swapped = false, keep = false, keepLog = false;
        Exception? failure = null;
        PostgresCutover? cutoverRun = null;
        PostgresReplay? replay = null;
        Checkpointer? checkpointer = null;
        try
        {
            PostgresLsnPosition start;
            if (resumed is null)
            {
                await store.CreateAsync(cancellationToken);
                await store.SaveLayoutAsync(shadow.Layout(), cancellationToken);
                // The slot before the first chunk is read: every commit after its consistent point is replayed.
                start = (await PostgresReplicationSlot.CreateAsync(connectionString, names, cancellationToken,
                    waiting => report(new OnlineAlterProgress("creating the replication slot", 0, facts.EstimatedRows, 0, waiting, clock.Elapsed)))).ConsistentPoint;
            }
            else
            {
                // Every change up to the checkpoint's position is in the shadow; the slot holds every one after it.
                start = PostgresLsnPosition.Parse(resumed.Position);
            }

            var writer = new PostgresChangeWriter(connectionString, facts.Table, shadow.Table, facts.Columns.Select(c => (c.Name, c.Type)).ToList(),
                facts.Key, shadow.KeyInShadow, shadow.Mapping, shadow.SourceExpressions);
            var fence = new CopyFence();
            // A fresh run leaves changes ahead of the copy to the copy; a resumed one may find rows of the last run there.
            CopyFrontier? frontier = resumed is null ? new CopyFrontier(fence) : null;
            // The slot is told no more than the last checkpoint records, so a resume finds every later change in it.
            replay = new PostgresReplay(connectionString, names, facts.Columns.Select(c => c.Name).ToList(), facts.Key, writer,
                feedOptions: new PostgresChangeFeedOptions { StartAfter = resumed is null ? null : start }, fence: fence, frontier: frontier,
                confirmLimit: () => checkpointer?.LastSaved is { } saved ? PostgresLsnPosition.Parse(saved.Position) : null);
            var ordering = new PostgresCopyOrdering(fence, replay.Feed.Received, frontier is not null);

            // From the first checkpoint on, an interrupted run can be resumed.
            checkpointer = new Checkpointer(store, migration, replay.Applier, start, resumed, options.CheckpointInterval, TimeProvider.System);
            await checkpointer.SaveAsync(cancellationToken);
            checkpointer.Start();

            heartbeat?.Start();
            await throttler.CheckAsync(cancellationToken);
            throttler.Start();
            // With a control socket, room for an operator to raise the workers while the copy runs.
            int copyTasks = options.Controls is null ? options.Workers : MigrationControls.CopyTasks(options.Workers, canGrow: true);
            var copySource = new PostgresCopySource(connectionString, facts, shadow, ordering);
            var copier = new KeysetCopier(new RetryingCopySource(new WidthChunkedCopySource(copySource, copySource)), options.NewChunkSizer(), throttler, copyTasks, frontier)
            {
                ActiveWorkers = options.Controls?.BindCopy(options.Workers, copyTasks),
            };
            PostgresReplay running = replay;
            long copiedBefore = checkpointer.RowsCopiedBefore;
            void Report(string state) => report(new OnlineAlterProgress(state, copiedBefore + copier.RowsCopied, facts.EstimatedRows, running.Applier.ChangesReceived,
                copier.Finished ? null : throttler.Reason, clock.Elapsed)
            {
                Backlog = running.Applier.Backlog,
                ReplicaLagMillis = throttler.ReplicaLagMillis,
            });

            async Task CatchUpAsync(CancellationToken token) => await running.DrainAsync(await PostgresReplay.CurrentPositionAsync(connection, token), token);
            var phases = new EnginePhases
            {
                BuildDeferredIndexesAsync = async (reportBuilding, token) =>
                {
                    if (shadow.DeferredIndexes.Count > 0)
                    {
                        // Built once rather than maintained row by row through the copy; only the replay's writes wait on it.
                        reportBuilding();
                        if (shadow.DefersUniqueKeys)
                        {
                            // Until the replay has passed every chunk's read, a row the copy brought can share a unique
                            // value with another row's older version: caught up, the shadow is the original as of a commit.
                            await CatchUpAsync(token);
                        }

                        await shadow.BuildDeferredIndexesAsync(connection, token);
                    }
                },
                CatchUpAsync = CatchUpAsync,
                // The slot moves on while the swap waits: the WAL it holds does not grow without bound.
                WhilePostponedAsync = CatchUpAsync,
                VerifyAsync = token => new PostgresVerifier(connectionString, facts, shadow, running.DrainAsync) { Ordering = ordering }.RunAsync(token),
                CutOverAsync = async token =>
                {
                    cutoverRun = new PostgresCutover(connectionString, facts, shadow, running.DrainTracedAsync, options.Cutover)
                    {
                        AfterSwapLog = store.Table,
                        Statement = migration.Statement,
                        DefinitionAtStart = definitionAtStart,
                    };
                    CutoverResult result = await cutoverRun.RunAsync(token);
                    swapped = true;
                    // Stopped while the materialized views were rebuilt: what is left is recorded for --resume.
                    token.ThrowIfCancellationRequested();
                    return result;
                },
            };
            (VerificationResult? verification, CutoverResult cutover) =
                await MigrationPhases.RunAsync(phases, copier, checkpointer, resumed, replay.Failed, options, Report, cancellationToken);
            if (options.DropOldTable && await DropOldTableAsync(connection, facts.Table with { Name = facts.Names.Old }) is { } kept)
            {
                cutover = cutover with { Notes = [.. cutover.Notes, kept] };
            }

            return new OnlineAlterResult(clock.Elapsed, copier.RowsCopied, replay.Applier.ChangesReceived, verification, cutover, facts.Names.Old)
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
        catch (Exception e) when (swapped || cutoverRun?.Swapped == true)
        {
            // After the swap there is nothing to undo and nothing left to replay: the slot goes, the bookkeeping table
            // stays with the record of what is left, foreign keys to validate and materialized views to rebuild (PostgresAfterSwap).
            keepLog = true;
            bool cancelled = cancellationToken.IsCancellationRequested;
            throw new MigrationKeptException(
                (cancelled ? "Stopped after the swap" : $"Failed after the swap ({e.Message})")
                + $": {original} has the new definition and the original is {original.Schema}.{shadowNames.Old}; foreign keys may be left NOT VALID and materialized views still reading the original.",
                $"--resume finishes them and removes {store.Table}; osc cleanup removes it and prints the statements that finish them.",
                cancelled, [store.Table.ToString()], e) { Swapped = true };
        }
        catch (Exception e) when (!swapped && cutoverRun?.Swapped != true && !options.CleanupOnAbort && (checkpointer?.LastSaved is not null || resumed is not null) && !MigrationSteps.EndsTheMigration(e))
        {
            // A resumed run keeps its work even before its own first checkpoint: the one it resumed from still stands.
            keep = true;
            if (replay is not null)
            {
                await replay.DisposeAsync();
            }

            throw await MigrationSteps.KeepBeforeSwapAsync(checkpointer, PostgresConnectionLoss.Explain(e, Server), cancellationToken.IsCancellationRequested, original.ToString(),
                [shadow.Table.ToString(), store.Table.ToString(), "replication slot " + names.Slot, "publication " + names.Publication],
                $"The replication slot {names.Slot} keeps the server's WAL until the migration is resumed or cleaned up.");
        }
        catch (Exception e) when (e is not OscException && PostgresConnectionLoss.Is(e))
        {
            throw PostgresConnectionLoss.Explain(e, Server);
        }
        finally
        {
            if (replay is not null)
            {
                await replay.DisposeAsync();
            }

            if (checkpointer is not null)
            {
                await checkpointer.DisposeAsync();
            }

            if (!keep)
            {
                bool swappedNow = swapped || cutoverRun?.Swapped == true;
                try
                {
                    // On fresh connections: the migration's may be mid-query after a cancellation.
                    using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    await PostgresReplicationSlot.DropAsync(connectionString, names, cleanup.Token);
                    if (!keepLog)
                    {
                        await store.DropAsync();
                    }

                    if (!swappedNow)
                    {
                        await using var fresh = new NpgsqlConnection(connectionString);
                        await fresh.OpenAsync(cleanup.Token);
                        await shadow.DropAsync(fresh);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException || PostgresConnectionLoss.Is(e))
                {
#pragma warning disable CA2219 // the exception in flight, if any, is this one's inner exception and its message begins this one's
                    // The slot above all must not be forgotten: it keeps the server's WAL until it is dropped.
                    throw MigrationSteps.CleanupFailed(failure, failure is null ? null : PostgresConnectionLoss.Explain(failure, Server).Message, e,
                        $"replication slot {names.Slot}, publication {names.Publication}, {store.Table}" + (swappedNow ? "" : $", {shadow.Table}"),
                        swappedNow, original.ToString(), "the slot keeps the server's WAL until then");
#pragma warning restore CA2219
                }
            }

            await using (var pooled = new NpgsqlConnection(connectionString))
            {
                NpgsqlConnection.ClearPool(pooled);
            }
        }
    }

    private string Server => $"{target.Host}:{target.Port}";

    /// <summary>
    /// `--resume` of a run that had swapped the tables and was stopped before it finished what follows
    /// (<see cref="PostgresAfterSwap"/>): drops the slot and publication, which only hold WAL back now, validates the
    /// foreign keys still NOT VALID, rebuilds the materialized views that still read the old table, honours
    /// --drop-old-table, and removes the bookkeeping table. The ALTER must be the one that was swapped in, or the
    /// operator would believe it applied.
    /// </summary>
    private async Task<OnlineAlterResult> FinishAfterSwapAsync(string connectionString, TableName original, ShadowNames shadowNames, PostgresReplicationNames names,
        PostgresCheckpointStore store, PostgresAfterSwap afterSwap, AlterStatement statement, Stopwatch clock, CancellationToken cancellationToken)
    {
        string normalised = MigrationDigest.Normalise(statement, SqlDialect.Postgres);
        if (afterSwap.Statement != normalised)
        {
            throw new OscException(
                $"The interrupted migration of {original} had swapped in another ALTER: {afterSwap.Statement}; this one is {normalised}.",
                $"Resume with that ALTER to finish it, or remove its leftovers with `osc cleanup <connection> --table {original}`; then run this ALTER anew.");
        }

        report(new OnlineAlterProgress("finishing after the swap", 0, 0, 0, null, clock.Elapsed));
        var notes = new List<string> { $"The interrupted run had already swapped the tables; this run finished what follows the swap." };
        await PostgresReplicationSlot.DropAsync(connectionString, names, cancellationToken);
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(cancellationToken);
            IReadOnlyList<PostgresAfterSwap.ForeignKey> keys = await afterSwap.NotValidAsync(connection, cancellationToken);
            await PostgresCutover.ValidateAsync(connectionString, options.Cutover.LockTimeout, keys, notes, cancellationToken);
            var left = (await afterSwap.NotValidAsync(connection, cancellationToken)).ToHashSet();
            if (keys.Where(k => !left.Contains(k)).Select(k => $"{k.Name} on {k.Table}").ToList() is { Count: > 0 } validated)
            {
                notes.Add($"Validated the foreign keys the swap had added NOT VALID: {string.Join(", ", validated)}.");
            }
        }

        TableName old = original with { Name = shadowNames.Old };
        notes.AddRange(await new PostgresMaterializedViews(connectionString, options.Cutover.LockTimeout, options.Cutover.Attempts, original, shadowNames)
            .ResumeAsync(afterSwap.MaterializedViews, old.ToString(), cancellationToken));
        // Stopped again mid-rebuild: the record stays for the next resume.
        cancellationToken.ThrowIfCancellationRequested();
        if (options.DropOldTable)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            if (await DropOldTableAsync(connection, old) is { } kept)
            {
                notes.Add(kept);
            }
        }

        await store.DropAsync();
        report(new OnlineAlterProgress("done", 0, 0, 0, null, clock.Elapsed));
        return new OnlineAlterResult(clock.Elapsed, 0, 0, null, new CutoverResult(TimeSpan.Zero, 0) { Notes = notes }, shadowNames.Old)
        {
            FinishedAfterSwap = true,
        };
    }

    /// <summary>--drop-old-table; returns a note when the old table had to be kept.</summary>
    private static async Task<string?> DropOldTableAsync(NpgsqlConnection connection, TableName old)
    {
        await using var drop = new NpgsqlCommand($"DROP TABLE IF EXISTS {PostgresSql.Quote(old)}", connection);
        try
        {
            await drop.ExecuteNonQueryAsync(CancellationToken.None);
            return null;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DependentObjectsStillExist)
        {
            // A view the swap had to leave on the old table: dropping it with CASCADE would destroy the
            // operator's object, so the old table stays and the swap, which succeeded, is not undone.
            return $"{old} was kept despite --drop-old-table: {e.MessageText} ({e.Detail}). Move or drop those objects, then DROP TABLE {PostgresSql.Quote(old)}.";
        }
    }

    /// <summary>What the digest records of the table: its columns and key, so a resume notices the table changed.</summary>
    private static string Definition(PostgresTableFacts facts) =>
        string.Join(", ", facts.Columns.Select(c => $"{c.Name} {c.Type}{(c.NotNull ? " NOT NULL" : "")}{(c.Generated ? " GENERATED" : "")}{(c.Identity != '\0' ? " IDENTITY " + c.Identity : "")}"))
        + "; key " + string.Join(", ", facts.Key);

    /// <summary>Named replicas are asked themselves; without them the primary's view of its streaming replicas decides.</summary>
    private Throttler BuildThrottler(string connectionString, TableName log, TimedWriteLoop? heartbeat) =>
        MigrationSteps.BuildThrottler(options, heartbeat,
            options.ReplicaConnectionStrings.Count == 0
                ? [PostgresThrottleSignals.ReplicaLagOnPrimary(connectionString, options.MaxLag)]
                : options.ReplicaConnectionStrings.Select(r => PostgresThrottleSignals.ReplicaLag(connectionString, r, log, options.MaxLag)),
            (spec, option) => PostgresThrottleSignals.Load(connectionString, spec, option));

    /// <summary>
    /// A chunk that lost a deadlock to the replay's writer (both insert into the shadow, in key order but each batch
    /// in several statements) is copied again: the copy is idempotent, and the server has already rolled it back.
    /// </summary>
    private sealed class RetryingCopySource(ICopySource inner) : ICopySource
    {
        private const int MaxAttempts = 8;

        public Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken) =>
            inner.FindChunkEndAsync(afterKey, rows, cancellationToken);

        public async Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken)
        {
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    return await inner.CopyRangeAsync(range, cancellationToken);
                }
                catch (PostgresException e) when (attempt < MaxAttempts && e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(10, 50) * attempt), cancellationToken);
                }
            }
        }
    }
}
