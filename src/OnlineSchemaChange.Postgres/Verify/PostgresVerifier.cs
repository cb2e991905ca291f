using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Postgres.Copy;
using OnlineSchemaChange.Postgres.Migration;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Verify;

/// <summary>
/// Compares the original and the shadow before the cut-over. Under a brief SHARE lock on the original (writes wait,
/// reads go on) the replay drains to the WAL insert position, and one REPEATABLE READ transaction exports its snapshot
/// to a second: both see the original and the shadow at the same instant, with nothing of the original's changes
/// still to replay. The lock is released, then chunk by chunk each side computes the row count and the sum and XOR
/// of a 64-bit hash of each row's mapped columns converted to the new types, in parallel. A chunk that differs is
/// deleted from the shadow, copied again and checked under a fresh snapshot, up to three times; one that still differs
/// stops the migration before any swap.
/// </summary>
public sealed class PostgresVerifier(string connectionString, PostgresTableFacts facts, PostgresShadowTable shadow,
    Func<ReplicationPosition, CancellationToken, Task> drainTo, int chunkRows = PostgresVerifier.DefaultChunkRows)
{
    /// <summary>
    /// Rows a chunk covers: the unit compared and, when it differs, re-copied. Each chunk costs a round trip on each side
    /// and a search for its end, so on 1,000,000 rows 100 chunks of 10,000 took about twice as long as 10 of 100,000
    /// (docs/benchmarks.md); a repair re-copying 100,000 rows takes a fraction of a second.
    /// </summary>
    public const int DefaultChunkRows = 100_000;

    /// <summary>How long the SHARE lock may be waited for (application writes queue behind the request meanwhile).</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>How long the replay may take to reach the position read under the lock; writes wait meanwhile.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public int LockAttempts { get; init; } = 5;

    /// <summary>Set when the replay runs during verification: repairs then pass the copy fence like the copy does.</summary>
    public PostgresCopyOrdering? Ordering { get; init; }

    private TimeSpan _writesBlocked;

    public async Task<VerificationResult> RunAsync(CancellationToken cancellationToken)
    {
        PostgresKey key = PostgresCopySource.KeyOf(facts);
        var shadowKey = new PostgresKey(shadow.KeyInShadow, shadow.KeyInShadow.Select(k => shadow.ColumnTypes[k]).ToList());
        var pairs = shadow.Mapping.Pairs;
        var types = shadow.ColumnTypes;
        var copy = new PostgresCopySource(connectionString, facts, shadow, Ordering);
        int major;
        IReadOnlyList<KeyRange> ranges;
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(cancellationToken);
            major = connection.PostgreSqlVersion.Major;
            ranges = await RangesAsync(copy, cancellationToken);
        }

        string originalRow = PostgresChecksumExpression.RowHash(
            pairs.Select(p => ($"CAST({shadow.SourceExpressions[p.Target]} AS {types[p.Target]})", types[p.Target])).ToList(), major);
        string shadowRow = PostgresChecksumExpression.RowHash(pairs.Select(p => (PostgresSql.Quote(p.Target), types[p.Target])).ToList(), major);

        VerificationResult result = await ChunkVerification.RunAsync(facts.Table.ToString(), ranges,
            async ct => await SnapshotsAsync(key, shadowKey, originalRow, shadowRow, ct),
            async (range, ct) =>
            {
                for (int attempt = 1; ; attempt++)
                {
                    try
                    {
                        await RepairAsync(copy, shadowKey, range, ct);
                        return;
                    }
                    catch (PostgresException e) when (attempt < MaxRepairAttempts
                                                      && e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
                    {
                        // A batch the replay was already writing when the repair entered the fence locked the same rows
                        // in another order; the server rolled the loser back. Delete and copy are idempotent: again.
                        await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(10, 50) * attempt), ct);
                    }
                }
            },
            cancellationToken);
        return result with { WritesBlocked = _writesBlocked };
    }

    private const int MaxRepairAttempts = 8;

    /// <summary>The chunks: cut by arithmetic over a dense integer key, else by walking the key (ChunkVerification).</summary>
    private async Task<List<KeyRange>> RangesAsync(PostgresCopySource copy, CancellationToken cancellationToken) =>
        await copy.ReadKeySpanAsync(cancellationToken) is { } span && ChunkVerification.RangesByWidth(span, chunkRows) is { } byWidth
            ? byWidth
            : await ChunkVerification.RangesAsync(copy, chunkRows, cancellationToken);

    private async Task RepairAsync(PostgresCopySource copy, PostgresKey shadowKey, KeyRange range, CancellationToken cancellationToken)
    {
        // The delete too: a batch must not land between it and the copy with a state older than the copy's read.
        using IDisposable? passage = Ordering?.Fence.Enter();
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(cancellationToken);
            await using var delete = connection.CreateCommand();
            delete.CommandText = $"DELETE FROM {PostgresSql.Quote(shadow.Table)} WHERE {shadowKey.Range(range.LowerExclusive, range.UpperInclusive, delete)}";
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        await copy.CopyRangeAsync(range, cancellationToken);
    }

    private async Task<IChunkSnapshots> SnapshotsAsync(PostgresKey key, PostgresKey shadowKey, string originalRow, string shadowRow, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await SnapshotsOnceAsync(key, shadowKey, originalRow, shadowRow, cancellationToken);
            }
            catch (Exception e) when (attempt < LockAttempts && !cancellationToken.IsCancellationRequested
                                      && e is PostgresException { SqlState: PostgresErrorCodes.LockNotAvailable } or OperationCanceledException or LockAttemptException)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt + Random.Shared.Next(200)), cancellationToken);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested
                                      && e is PostgresException { SqlState: PostgresErrorCodes.LockNotAvailable } or OperationCanceledException or LockAttemptException)
            {
                throw new OscException(
                    $"Verification could not lock {facts.Table} (SHARE) within {LockTimeout.TotalSeconds:0.#} s, or the replay did not catch up within {DrainTimeout.TotalSeconds:0.#} s, in {LockAttempts} attempts.",
                    "A long transaction writes to the table, or the replay is far behind; let it finish (pg_stat_activity) or wait, then run again. Nothing was swapped.", e);
            }
        }
    }

    private async Task<IChunkSnapshots> SnapshotsOnceAsync(PostgresKey key, PostgresKey shadowKey, string originalRow, string shadowRow, CancellationToken cancellationToken)
    {
        var original = new NpgsqlConnection(connectionString);
        var copy = new NpgsqlConnection(connectionString);
        try
        {
            await original.OpenAsync(cancellationToken);
            await copy.OpenAsync(cancellationToken);
            await using (var locker = new NpgsqlConnection(connectionString))
            {
                await locker.OpenAsync(cancellationToken);
                // Catch up unlocked first, so that writes wait under the lock only for the last moment's changes; a
                // replay that cannot get there fails the attempt before the lock, which is then retried.
                await CatchUpBeforeLock.RunAsync(async ct =>
                {
                    await using var current = new NpgsqlCommand($"SELECT {PostgresReplay.CurrentPositionSql}", locker);
                    return new PostgresLsnPosition((NpgsqlTypes.NpgsqlLogSequenceNumber)(await current.ExecuteScalarAsync(ct))!);
                }, drainTo, DrainTimeout, cancellationToken);

                await using NpgsqlTransaction locked = await locker.BeginTransactionAsync(cancellationToken);
                long requested = System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    // One round trip from the lock request on: BEGIN goes with it.
                    await ExecuteAsync(locker, $"SET LOCAL lock_timeout = {Math.Max(1, (int)LockTimeout.TotalMilliseconds)}; LOCK TABLE {PostgresSql.Quote(facts.Table)} IN SHARE MODE",
                        cancellationToken);
                    await using (var lsn = new NpgsqlCommand($"SELECT {PostgresReplay.CurrentPositionSql}", locker))
                    {
                        var position = new PostgresLsnPosition((NpgsqlTypes.NpgsqlLogSequenceNumber)(await lsn.ExecuteScalarAsync(cancellationToken))!);
                        // Writes to the original wait while this runs: bounded, and retried like a lock timeout.
                        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                        drain.CancelAfter(DrainTimeout);
                        await drainTo(position, drain.Token);
                    }

                    // Taken after the drain and before the unlock: the shadow holds every change the original has.
                    await ExecuteAsync(original, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", cancellationToken);
                    string snapshot;
                    await using (var export = new NpgsqlCommand("SELECT pg_export_snapshot()", original))
                    {
                        snapshot = (string)(await export.ExecuteScalarAsync(cancellationToken))!;
                    }

                    await ExecuteAsync(copy, $"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'", cancellationToken);
                    await locked.CommitAsync(cancellationToken);
                }
                finally
                {
                    _writesBlocked += System.Diagnostics.Stopwatch.GetElapsedTime(requested);
                }
            }

            return new Snapshots(original, copy, facts, shadow, key, shadowKey, originalRow, shadowRow);
        }
        catch
        {
            await original.DisposeAsync();
            await copy.DisposeAsync();
            throw;
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private sealed class Snapshots(NpgsqlConnection original, NpgsqlConnection copy, PostgresTableFacts facts, PostgresShadowTable shadow,
        PostgresKey key, PostgresKey shadowKey, string originalRow, string shadowRow) : IChunkSnapshots
    {
        public async Task<(ChunkChecksum Original, ChunkChecksum Shadow)> ChecksumAsync(KeyRange range, CancellationToken cancellationToken)
        {
            Task<ChunkChecksum> a = ChecksumAsync(original, PostgresSql.Quote(facts.Table), key, originalRow, range, cancellationToken);
            Task<ChunkChecksum> b = ChecksumAsync(copy, PostgresSql.Quote(shadow.Table), shadowKey, shadowRow, range, cancellationToken);
            return (await a, await b);
        }

        public async ValueTask DisposeAsync()
        {
            await original.DisposeAsync();
            await copy.DisposeAsync();
        }

        /// <summary>
        /// Row count, and sum and XOR of a 64-bit hash of each row (<see cref="PostgresChecksumExpression"/>): the hash
        /// functions partitioning relies on staying stable, about a third of md5's cost with no hex text to parse back;
        /// the comparison needs no cryptographic strength.
        /// </summary>
        private static async Task<ChunkChecksum> ChecksumAsync(NpgsqlConnection connection, string table, PostgresKey key, string rowHash, KeyRange range,
            CancellationToken cancellationToken)
        {
            await using var command = connection.CreateCommand();
            string where = key.Range(range.LowerExclusive, range.UpperInclusive, command);
            // OFFSET 0 keeps the subquery from being flattened, which would put the hash into each aggregate and compute
            // it twice a row: half the chunk's time on pgbench_accounts.
            command.CommandText =
                $"SELECT count(*), coalesce(sum(h), 0)::text || ':' || coalesce(bit_xor(h), 0)::text FROM (SELECT {rowHash} AS h FROM {table} WHERE {where} OFFSET 0) s";
            command.CommandTimeout = 600;
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return new ChunkChecksum(reader.GetInt64(0), reader.GetString(1));
        }
    }
}
