using System.Diagnostics;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Postgres.Apply;
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
/// verification, and the swap. On any failure or cancellation everything this run created (slot, publication,
/// shadow) is removed and the original is left as it was; the slot and publication go on success too.
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
        PostgresTableFacts facts = await new PostgresInspector(connection).InspectAsync(table, statement, cancellationToken);
        var names = new PostgresReplicationNames(connection.Database, facts.Table);
        if (await PostgresReplicationSlot.FindLeftoverAsync(connection, names, cancellationToken) is { } leftover)
        {
            throw PostgresReplicationSlot.Leftover(leftover, names);
        }

        // Built before anything is created, so a bad --max-load is refused with nothing to clean up.
        await using Throttler throttler = BuildThrottler(connectionString);
        PostgresShadowTable shadow = await PostgresShadowTable.CreateAsync(connection, facts, statement, cancellationToken);
        bool swapped = false;
        PostgresReplay? replay = null;
        try
        {
            // The slot before the first chunk is read: every commit after its consistent point is replayed.
            await PostgresReplicationSlot.CreateAsync(connectionString, names, cancellationToken);
            var writer = new PostgresChangeWriter(connectionString, facts.Table, shadow.Table, facts.Columns.Select(c => (c.Name, c.Type)).ToList(),
                facts.Key, shadow.KeyInShadow, shadow.Mapping, shadow.SourceExpressions);
            var fence = new CopyFence();
            replay = new PostgresReplay(connectionString, names, facts.Columns.Select(c => c.Name).ToList(), facts.Key, writer, fence: fence);
            var ordering = new PostgresCopyOrdering(fence, replay.Feed.Received);

            await throttler.CheckAsync(cancellationToken);
            throttler.Start();
            var copier = new KeysetCopier(new RetryingCopySource(new PostgresCopySource(connectionString, facts, shadow, ordering)), new ChunkSizer(options.ChunkTime), throttler, options.Workers);
            PostgresReplay running = replay;
            void Report(string state) => report(new OnlineAlterProgress(state, copier.RowsCopied, facts.EstimatedRows, running.Applier.ChangesReceived, copier.Finished ? null : throttler.Reason, clock.Elapsed));

            Report("copying");
            using (var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            using (var ticker = new PeriodicTimer(TimeSpan.FromSeconds(1)))
            {
                Task copy = copier.RunAsync(null, stop.Token);
                while (!copy.IsCompleted)
                {
                    Task tick = ticker.WaitForNextTickAsync(stop.Token).AsTask();
                    if (await Task.WhenAny(copy, tick, replay.Failed) == replay.Failed)
                    {
                        await stop.CancelAsync();
                        await copy.ContinueWith(_ => { }, TaskScheduler.Default);
                        await replay.Failed;
                    }

                    Report("copying");
                }

                await copy;
            }

            if (shadow.DeferredIndexes.Count > 0)
            {
                // Built once rather than maintained row by row through the copy; only the replay's writes wait on it.
                Report("building indexes");
                await shadow.BuildDeferredIndexesAsync(connection, cancellationToken);
            }

            Report("catching up");
            await replay.DrainAsync(await PostgresReplay.CurrentPositionAsync(connection, cancellationToken), cancellationToken);

            while (options.PostponeCutoverFlagFile is not null && File.Exists(options.PostponeCutoverFlagFile))
            {
                Report($"postponed while {options.PostponeCutoverFlagFile} exists");
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                await replay.DrainAsync(await PostgresReplay.CurrentPositionAsync(connection, cancellationToken), cancellationToken);
            }

            VerificationResult? verification = null;
            if (options.Verify)
            {
                Report("verifying");
                verification = await new PostgresVerifier(connectionString, facts, shadow, replay.DrainAsync) { Ordering = ordering }.RunAsync(cancellationToken);
            }

            Report("cutting over");
            CutoverResult cutover = await new PostgresCutover(connectionString, facts, shadow, replay.DrainAsync, options.Cutover).RunAsync(cancellationToken);
            swapped = true;
            Report("done");
            if (options.DropOldTable)
            {
                await using var drop = new NpgsqlCommand($"DROP TABLE IF EXISTS {PostgresSql.Quote(facts.Table with { Name = facts.Names.Old })}", connection);
                await drop.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return new OnlineAlterResult(clock.Elapsed, copier.RowsCopied, replay.Applier.ChangesReceived, verification, cutover, facts.Names.Old);
        }
        finally
        {
            if (replay is not null)
            {
                await replay.DisposeAsync();
            }

            // On a fresh connection: the migration's may be mid-query after a cancellation.
            using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await PostgresReplicationSlot.DropAsync(connectionString, names, cleanup.Token);
            if (!swapped)
            {
                await using var fresh = new NpgsqlConnection(connectionString);
                await fresh.OpenAsync(cleanup.Token);
                await shadow.DropAsync(fresh);
            }

            await using (var pooled = new NpgsqlConnection(connectionString))
            {
                NpgsqlConnection.ClearPool(pooled);
            }
        }
    }

    private Throttler BuildThrottler(string connectionString)
    {
        var signals = new List<IThrottleSignal>();
        if (options.ThrottleFlagFile is not null)
        {
            signals.Add(new FlagFileSignal(options.ThrottleFlagFile));
        }

        // Named replicas are asked themselves; without them the primary's view of its streaming replicas decides.
        signals.AddRange(options.ReplicaConnectionStrings.Count == 0
            ? [PostgresThrottleSignals.ReplicaLagOnPrimary(connectionString, options.MaxLag)]
            : options.ReplicaConnectionStrings.Select(r => PostgresThrottleSignals.ReplicaLag(r, options.MaxLag)));
        if (options.MaxLoad is not null)
        {
            signals.AddRange(PostgresThrottleSignals.Load(connectionString, options.MaxLoad, "--max-load"));
        }

        IReadOnlyList<IThrottleSignal> abort = options.CriticalLoad is null ? [] : PostgresThrottleSignals.Load(connectionString, options.CriticalLoad, "--critical-load");
        return new Throttler(signals, TimeSpan.FromMilliseconds(250), TimeProvider.System, abort);
    }

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
