using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Throttle;
using OnlineSchemaChange.MySql.Apply;
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
/// the copy, heartbeat and throttling, the chunked copy, verification, and the atomic swap. On any failure or
/// cancellation everything this run created (shadow, bookkeeping table, sentry) is removed and the original is left
/// as it was.
/// </summary>
public sealed class MySqlOnlineAlter(ConnectionTarget target, OnlineAlterOptions options, Action<OnlineAlterProgress> report)
{
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
        MySqlTableFacts facts = await new MySqlInspector(connection).InspectAsync(original, statement, cancellationToken);
        ShadowTable shadow = await ShadowTable.CreateAsync(connection, facts, statement, cancellationToken);
        var log = original with { Name = facts.Names.Log };
        bool swapped = false;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task feeding = Task.CompletedTask, applying = Task.CompletedTask;
        BinlogClient? client = null;
        try
        {
            await MySqlHeartbeat.CreateLogTableAsync(connectionString, log, cancellationToken);
            await using var heartbeat = new MySqlHeartbeat(connectionString, log, TimeSpan.FromMilliseconds(100));
            heartbeat.Start();

            // Replay starts at a position taken before the first chunk is read: every later commit is replayed.
            (string file, long position) = await MasterStatusAsync(connection, cancellationToken);
            client = new BinlogClient(new BinlogClientOptions(new MySqlEndpoint(target.Host, target.Port, target.User ?? Environment.UserName, target.Password ?? ""))
            {
                Start = new BinlogStart.FilePosition(file, (uint)position),
                Tables = new HashSet<string> { $"{schema}.{table.Name}" },
                ServerId = options.ServerId,
            });
            var keyIndexes = facts.Key.Select(k => facts.Columns.ToList().FindIndex(c => c.Name.Equals(k, StringComparison.OrdinalIgnoreCase))).ToList();
            var originalKey = new MySqlKeyPredicate(facts.Key);
            var shadowKey = new MySqlKeyPredicate(shadow.KeyInShadow);
            var changes = Channel.CreateBounded<ReplicationMessage>(new BoundedChannelOptions(50_000) { SingleReader = true, SingleWriter = true });
            var fence = new CopyFence();
            var applier = new ChangeApplier(new MySqlChangeWriter(connectionString, shadow.Table, shadowKey, shadow.Mapping), new ApplierOptions(), TimeProvider.System, fence);
            feeding = new MySqlChangeFeed(client.ReadEventsAsync(stop.Token), schema, table.Name, keyIndexes).RunAsync(changes.Writer, stop.Token);
            applying = applier.RunAsync(changes.Reader, stop.Token);
            Task replayFailed = WatchReplayAsync(feeding, applying);

            await using Throttler throttler = BuildThrottler(connectionString, log);
            await throttler.CheckAsync(cancellationToken);
            throttler.Start();
            var copier = new KeysetCopier(new FencedCopySource(new MySqlCopySource(connectionString, original, shadow.Table, originalKey, shadow.Mapping, log), fence),
                new ChunkSizer(options.ChunkTime), throttler, options.Workers);
            void Report(string state) => report(new OnlineAlterProgress(state, copier.RowsCopied, facts.EstimatedRows, applier.ChangesReceived, throttler.Reason, clock.Elapsed));

            Report("copying");
            using (var ticker = new PeriodicTimer(TimeSpan.FromSeconds(1)))
            {
                Task copy = copier.RunAsync(null, stop.Token);
                while (!copy.IsCompleted)
                {
                    Task tick = ticker.WaitForNextTickAsync(stop.Token).AsTask();
                    if (await Task.WhenAny(copy, tick, replayFailed) == replayFailed)
                    {
                        await replayFailed;
                    }

                    Report("copying");
                }

                await copy;
            }

            async Task DrainAsync(ReplicationPosition target, CancellationToken token)
            {
                Task caughtUp = applier.WaitForAsync(target, token);
                if (await Task.WhenAny(caughtUp, replayFailed) == replayFailed)
                {
                    await replayFailed;
                }

                await caughtUp;
            }

            Report("catching up");
            var (endFile, endPosition) = await MasterStatusAsync(connection, cancellationToken);
            await DrainAsync(new MySqlBinlogPosition(endFile, endPosition), cancellationToken);

            while (options.PostponeCutoverFlagFile is not null && File.Exists(options.PostponeCutoverFlagFile))
            {
                Report($"postponed while {options.PostponeCutoverFlagFile} exists");
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }

            VerificationResult? verification = null;
            if (options.Verify)
            {
                Report("verifying");
                verification = await new MySqlVerifier(connectionString, original, shadow.Table, originalKey, shadowKey, shadow.Mapping,
                    shadow.ColumnTypes, DrainAsync).RunAsync(cancellationToken);
            }

            Report("cutting over");
            CutoverResult cutover = await new MySqlCutover(connectionString, original, facts.Names, DrainAsync, options.Cutover).RunAsync(cancellationToken);
            swapped = true;
            Report("done");
            if (options.DropOldTable)
            {
                await new MySqlCatalog(connection).ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(original with { Name = facts.Names.Old })}", CancellationToken.None);
            }

            return new OnlineAlterResult(clock.Elapsed, copier.RowsCopied, applier.ChangesReceived, verification, cutover, facts.Names.Old);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(feeding, applying).ContinueWith(_ => { }, TaskScheduler.Default);
            if (client is not null)
            {
                await client.DisposeAsync();
            }

            using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var catalog = new MySqlCatalog(connection);
            await catalog.ExecuteAsync($"DROP TABLE IF EXISTS {MySqlSql.Quote(log)}", cleanup.Token);
            if (!swapped)
            {
                await shadow.DropAsync(connection);
            }
        }
    }

    /// <summary>Ends only in an error: the replay's own, or that it stopped, which must never happen mid-migration.</summary>
    private static async Task WatchReplayAsync(Task feeding, Task applying)
    {
        await await Task.WhenAny(feeding, applying);
        throw new OscException("The binlog replay stopped unexpectedly.", "Check the server's binary logs are still available and the replication user's grants.");
    }

    private Throttler BuildThrottler(string connectionString, TableName log)
    {
        var signals = new List<IThrottleSignal>();
        if (options.ThrottleFlagFile is not null)
        {
            signals.Add(new FlagFileSignal(options.ThrottleFlagFile));
        }

        signals.AddRange(options.ReplicaConnectionStrings.Select(r => MySqlThrottleSignals.ReplicaLag(
            new MySqlConnectionStringBuilder(r) { Database = log.Schema }.ConnectionString, log, options.MaxLag)));
        if (options.MaxLoad is not null)
        {
            signals.AddRange(MySqlThrottleSignals.Load(connectionString, options.MaxLoad, "--max-load"));
        }

        IReadOnlyList<IThrottleSignal> abort = options.CriticalLoad is null ? [] : MySqlThrottleSignals.Load(connectionString, options.CriticalLoad, "--critical-load");
        return new Throttler(signals, TimeSpan.FromMilliseconds(250), TimeProvider.System, abort);
    }

    private static async Task<(string File, long Position)> MasterStatusAsync(MySqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand("SHOW MASTER STATUS", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetString(0), Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture));
    }
}
