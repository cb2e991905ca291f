using System.Diagnostics;
using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Postgres.Replication;

/// <summary>
/// The slot's stream replayed into the shadow table: the feed and the applier running on their own, joined by a
/// bounded channel, with the drain the verifier and the cut-over wait on. Disposing stops both.
/// </summary>
public sealed class PostgresReplay : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly string _connectionString;
    private readonly string _slot;
    private readonly Task _feeding;
    private readonly Task _applying;
    private readonly Task _failed;
    private int _disposed;

    /// <param name="connectionString">The server.</param>
    /// <param name="names">The slot and publication to stream from.</param>
    /// <param name="columns">The original's columns, in order.</param>
    /// <param name="keyColumns">The columns that identify a row.</param>
    /// <param name="writer">Writes batches into the shadow.</param>
    /// <param name="applierOptions">Batching.</param>
    /// <param name="feedOptions">Status interval, reconnection, a resumed run's start.</param>
    /// <param name="fence">The fence shared with the copy.</param>
    /// <param name="frontier">How far the copy has reached; changes beyond it are left to the copy.</param>
    /// <param name="confirmLimit">
    /// When given, the slot is told no position beyond what it returns (the last checkpoint's): a slot never confirms
    /// more than a checkpoint records, which a resume checks. Null from it means nothing may be confirmed yet.
    /// </param>
    public PostgresReplay(string connectionString, PostgresReplicationNames names, IReadOnlyList<string> columns, IReadOnlyList<string> keyColumns,
        IChangeWriter writer, ApplierOptions? applierOptions = null, PostgresChangeFeedOptions? feedOptions = null, CopyFence? fence = null,
        Func<ReplicationPosition?>? confirmLimit = null, CopyFrontier? frontier = null)
    {
        ArgumentNullException.ThrowIfNull(names);
        _connectionString = connectionString;
        _slot = names.Slot;
        applierOptions ??= new ApplierOptions();
        Channel<ReplicationMessage> changes = ReplayChannel.Create(applierOptions);
        Applier = new ChangeApplier(writer, applierOptions, TimeProvider.System, fence, frontier);
        Feed = new PostgresChangeFeed(connectionString, names, columns, keyColumns, () => Confirmable(Applier.Applied, confirmLimit), feedOptions);
        _feeding = Task.Run(() => Feed.RunAsync(changes.Writer, _stop.Token));
        _applying = Task.Run(() => Applier.RunAsync(changes.Reader, _stop.Token));
        _failed = WatchAsync(_feeding, _applying);
    }

    public PostgresChangeFeed Feed { get; }

    public ChangeApplier Applier { get; }

    /// <summary>Ends only in an error: the replay's own, or that it stopped, which must never happen mid-migration.</summary>
    public Task Failed => _failed;

    /// <summary>
    /// Completes once every change committed before <paramref name="target"/> is written to the shadow table. A
    /// marker emitted into the WAL after the target gives the stream a position past it even when nothing more is
    /// committed to the table.
    /// </summary>
    public async Task DrainAsync(ReplicationPosition target, CancellationToken cancellationToken) =>
        await DrainTracedAsync(target, cancellationToken);

    /// <summary><see cref="DrainAsync"/>, saying when each of its waits ended.</summary>
    public async Task<PostgresDrainTrace> DrainTracedAsync(ReplicationPosition target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        long rowsBefore = Applier.RowsWritten;
        ulong backlog = target is PostgresLsnPosition to && Applier.Applied is PostgresLsnPosition at && (ulong)to.Lsn > (ulong)at.Lsn
            ? (ulong)to.Lsn - (ulong)at.Lsn : 0;
        Task caughtUp = Applier.WaitForAsync(target, cancellationToken);
        PostgresLsnPosition? marker = null;
        long? committed = null;
        if (!caughtUp.IsCompleted)
        {
            marker = await EmitMarkerAsync(_connectionString, cancellationToken);
            committed = Stopwatch.GetTimestamp();
        }

        if (await Task.WhenAny(caughtUp, _failed) == _failed)
        {
            await _failed;
        }

        await caughtUp;
        long applied = Stopwatch.GetTimestamp();
        long? received = marker is not null && Feed.LastMarker is { } seen && seen.Lsn == marker.Lsn ? seen.Timestamp : null;
        return new PostgresDrainTrace(committed, received, applied, backlog, Applier.RowsWritten - rowsBefore);
    }

    /// <summary>
    /// The SQL expression for the position a drain started now has to reach: the WAL insert position, which is past
    /// the commit record of every transaction that has committed. Not pg_current_wal_lsn(): that is the write position,
    /// and a transaction committed with synchronous_commit off is visible before the WAL writer writes its commit record
    /// (up to wal_writer_delay later), so a drain to it could end before a committed change, and a swap lose it.
    /// </summary>
    public const string CurrentPositionSql = "pg_current_wal_insert_lsn()";

    /// <summary>The position a drain started now has to reach (<see cref="CurrentPositionSql"/>).</summary>
    public static async Task<PostgresLsnPosition> CurrentPositionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT {CurrentPositionSql}", connection);
        return new PostgresLsnPosition((NpgsqlLogSequenceNumber)(await command.ExecuteScalarAsync(cancellationToken))!);
    }

    /// <summary>
    /// Writes a non-transactional logical message to the WAL and flushes it; every slot's stream passes it at once.
    /// A walsender sends only flushed WAL, and nothing flushes a lone message until the WAL writer's next round (up to
    /// wal_writer_delay, 200 ms by default, later when it hibernates; always so with synchronous_commit off). So the
    /// message is written in a transaction that takes an xid and commits with synchronous_commit on: its commit
    /// flushes the WAL through the message. Every drain, under the cut-over's lock too, waited for that round before.
    /// </summary>
    public static async Task<PostgresLsnPosition> EmitMarkerAsync(string connectionString, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(false, '{PostgresChangeFeed.MarkerPrefix}', 'drain'); SELECT pg_current_xact_id(); COMMIT",
            connection);
        return new PostgresLsnPosition((NpgsqlLogSequenceNumber)(await command.ExecuteScalarAsync(cancellationToken))!);
    }

    /// <summary>Stops the feed and the applier; a second call does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _stop.CancelAsync();
        Task stopped = Task.WhenAll(_feeding, _applying).ContinueWith(_ => { }, TaskScheduler.Default);
        if (await Task.WhenAny(stopped, Task.Delay(StopTimeout)) != stopped)
        {
            // The replication stream answers a cancellation only once the walsender reads our CopyDone, which it
            // may not do for a long time (seen once: a run hung for ten minutes). End the walsender instead.
            await TerminateWalSenderAsync();
            await Task.WhenAny(stopped, Task.Delay(StopTimeout));
        }

        if (stopped.IsCompleted)
        {
            _stop.Dispose();
        }
    }

    /// <summary>How long disposing waits for the stream to stop before ending its walsender.</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private async Task TerminateWalSenderAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(StopTimeout);
            await using var connection = new NpgsqlConnection(_connectionString);
            await connection.OpenAsync(timeout.Token);
            await using var command = new NpgsqlCommand(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = _slot });
            await command.ExecuteNonQueryAsync(timeout.Token);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException)
        {
            // The server is away: the stream ends with the connection, and the cleanup reports the slot.
        }
    }

    /// <summary>What the slot may be told is flushed: what the shadow holds, and no more than the limit allows.</summary>
    private static ReplicationPosition? Confirmable(ReplicationPosition? applied, Func<ReplicationPosition?>? limit)
    {
        if (applied is null || limit is null)
        {
            return applied;
        }

        ReplicationPosition? bound = limit();
        return bound is null ? null : applied.CompareTo(bound) <= 0 ? applied : bound;
    }

    private static async Task WatchAsync(Task feeding, Task applying)
    {
        await await Task.WhenAny(feeding, applying);
        throw new OscException("The replication stream replay stopped unexpectedly.", "Check the server's log; the original table is untouched.");
    }
}
