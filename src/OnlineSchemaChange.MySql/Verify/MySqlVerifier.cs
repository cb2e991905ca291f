using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.MySql.Replication;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Verify;

/// <summary>
/// Compares the original and the shadow before the cut-over, as Spirit does: under a brief READ lock on the original
/// (writes wait, reads go on) the replay drains to the current position and both tables get a consistent snapshot;
/// then the lock is released and the snapshots are compared chunk by chunk (row count, and the sum of each row's
/// CRC32 over every mapped column in the new types). A chunk that differs is copied again and checked again, up to
/// three times; one that still differs stops the migration before any swap.
/// </summary>
public sealed class MySqlVerifier(string connectionString, TableName original, TableName shadow, MySqlKeyPredicate originalKey,
    MySqlKeyPredicate keyInShadow, ColumnMapping mapping, IReadOnlyDictionary<string, string> shadowTypes,
    Func<ReplicationPosition, CancellationToken, Task> drainTo, int chunkRows = MySqlVerifier.DefaultChunkRows)
{
    /// <summary>
    /// Rows a compared chunk covers. Each costs a round trip on each side and a search for its end: on 1,000,000 rows,
    /// 10 chunks took about two thirds of the time of 100 (docs/benchmarks.md). A repair copies in smaller pieces.
    /// </summary>
    public const int DefaultChunkRows = 100_000;

    /// <summary>
    /// How long the READ lock may be waited for. Application writes queue behind the waiting request, so this is the
    /// longest they wait on verification (the cut-over's lock timeout is passed here).
    /// </summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>How long the replay may take to catch up while writes are held, before the attempt lets go.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(3);

    public int LockAttempts { get; init; } = 5;

    private TimeSpan _writesBlocked;

    public async Task<VerificationResult> RunAsync(CancellationToken cancellationToken)
    {
        (IReadOnlySet<string> unchanged, IReadOnlySet<string> neverNull) = await UnchangedColumnsAsync(cancellationToken);
        (string originalRow, string shadowRow) = MySqlChecksumExpression.Build(mapping, shadowTypes, unchanged, neverNull);
        List<KeyRange> ranges = await RangesAsync(cancellationToken);
        VerificationResult result = await ChunkVerification.RunAsync(original.ToString(), ranges,
            async ct => new Snapshots(await SnapshotsAsync(ct), (original, originalKey, originalRow), (shadow, keyInShadow, shadowRow)),
            RepairAsync, cancellationToken);
        return result with { WritesBlocked = _writesBlocked };
    }

    /// <summary>The chunks: cut by arithmetic over a dense integer key, else by walking the key (ChunkVerification).</summary>
    private async Task<List<KeyRange>> RangesAsync(CancellationToken cancellationToken)
    {
        var copy = new Copy.MySqlCopySource(connectionString, original, shadow, originalKey, mapping);
        return await copy.ReadKeySpanAsync(cancellationToken) is { } span && ChunkVerification.RangesByWidth(span, chunkRows) is { } byWidth
            ? byWidth
            : await ChunkVerification.RangesAsync(copy, chunkRows, cancellationToken);
    }

    /// <summary>
    /// The shadow's columns whose type, character set and collation are those of the original column they come from,
    /// and those of them that are NOT NULL in both tables.
    /// </summary>
    private async Task<(IReadOnlySet<string> Unchanged, IReadOnlySet<string> NeverNull)> UnchangedColumnsAsync(CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        async Task<Dictionary<string, (string Definition, bool Nullable)>> DefinitionsAsync(TableName table)
        {
            await using var command = new MySqlCommand(
                "SELECT COLUMN_NAME, CONCAT_WS(' ', COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME), IS_NULLABLE = 'YES' FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(@s, DATABASE()) AND TABLE_NAME = @t",
                connection);
            command.Parameters.AddWithValue("@s", table.Schema);
            command.Parameters.AddWithValue("@t", table.Name);
            var definitions = new Dictionary<string, (string, bool)>(StringComparer.OrdinalIgnoreCase);
            await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                definitions[reader.GetString(0)] = (reader.GetString(1), Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture) != 0);
            }

            return definitions;
        }

        Dictionary<string, (string Definition, bool Nullable)> before = await DefinitionsAsync(original), after = await DefinitionsAsync(shadow);
        var unchanged = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var neverNull = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (_, source, target) in mapping.Pairs)
        {
            if (before.TryGetValue(source, out var a) && after.TryGetValue(target, out var b) && string.Equals(a.Definition, b.Definition, StringComparison.OrdinalIgnoreCase))
            {
                unchanged.Add(target);
                if (!a.Nullable && !b.Nullable)
                {
                    neverNull.Add(target);
                }
            }
        }

        return (unchanged, neverNull);
    }

    /// <summary>Takes the snapshots, retrying with backoff when the lock or the drain under it takes too long.</summary>
    private async Task<SnapshotPair> SnapshotsAsync(CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await SnapshotsOnceAsync(cancellationToken);
            }
            catch (Exception e) when (attempt < LockAttempts && IsLockOrDrainTimeout(e, cancellationToken))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250 * attempt), cancellationToken);
            }
            catch (Exception e) when (IsLockOrDrainTimeout(e, cancellationToken))
            {
                throw new OscException(
                    $"Verification could not hold {original} for its consistent snapshots in {LockAttempts} attempts: " +
                    (e is MySqlException ? $"its READ lock waited more than {LockTimeout.TotalSeconds:0.#} s"
                        : e is LockAttemptException ? $"the replay did not catch up within {DrainTimeout.TotalSeconds:0.#} s before the lock"
                        : $"the replay did not catch up within {DrainTimeout.TotalSeconds:0.#} s under the lock") + ".",
                    "A long transaction that wrote to the table holds it (see information_schema.INNODB_TRX), or the replay is far behind. " +
                    "End that transaction and run again (--resume continues), or raise --cut-over-lock-timeout-seconds.");
            }
        }
    }

    private static bool IsLockOrDrainTimeout(Exception e, CancellationToken cancellationToken) =>
        e is MySqlException { ErrorCode: MySqlErrorCode.LockWaitTimeout } or LockAttemptException
        || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested);

    private async Task<SnapshotPair> SnapshotsOnceAsync(CancellationToken cancellationToken)
    {
        // The locker goes at the end of every attempt, a lock or drain timeout included; the snapshot pair only on failure.
        await using var locker = new MySqlConnection(connectionString);
        var a = new MySqlConnection(connectionString);
        var b = new MySqlConnection(connectionString);
        try
        {
            await locker.OpenAsync(cancellationToken);
            await a.OpenAsync(cancellationToken);
            await b.OpenAsync(cancellationToken);

            // Catch up unlocked first, so that writes wait under the lock only for the last moment's changes (the
            // replay's backlog after the index build is what made the lock a p99 spike under sysbench). A replay that
            // cannot get there fails the attempt before the lock, which is then retried.
            await CatchUpBeforeLock.RunAsync(async ct => await MySqlBinlogPosition.CurrentAsync(locker, ct), drainTo, DrainTimeout, cancellationToken);

            // Everything that need not wait under the lock is done before it: the snapshot sessions' isolation level,
            // the lock wait's bound (whole seconds: at least 1).
            await Task.WhenAll(
                ExecuteAsync(a, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", cancellationToken),
                ExecuteAsync(b, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", cancellationToken),
                ExecuteAsync(locker, $"SET SESSION lock_wait_timeout = {Math.Max(1, (int)Math.Ceiling(LockTimeout.TotalSeconds))}", cancellationToken));
            long requested = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                await ExecuteAsync(locker, $"LOCK TABLES {MySqlSql.Quote(original)} READ", cancellationToken);
                try
                {
                    ReplicationPosition position = await MySqlBinlogPosition.CurrentAsync(locker, cancellationToken);

                    // With writes to the original held and the replay at the same point, both snapshots see one state.
                    using (var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                    {
                        drain.CancelAfter(DrainTimeout);
                        await drainTo(position, drain.Token);
                    }

                    await Task.WhenAll(
                        ExecuteAsync(a, "START TRANSACTION WITH CONSISTENT SNAPSHOT", cancellationToken),
                        ExecuteAsync(b, "START TRANSACTION WITH CONSISTENT SNAPSHOT", cancellationToken));
                }
                finally
                {
                    await ExecuteAsync(locker, "UNLOCK TABLES", CancellationToken.None);
                }
            }
            finally
            {
                _writesBlocked += System.Diagnostics.Stopwatch.GetElapsedTime(requested);
            }

            return new SnapshotPair(a, b);
        }
        catch
        {
            await a.DisposeAsync();
            await b.DisposeAsync();
            throw;
        }
    }

    private static async Task<ChunkChecksum> ChecksumAsync(MySqlConnection connection, TableName table, MySqlKeyPredicate key, string row, KeyRange range,
        CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        var conditions = new List<string>();
        if (range.LowerExclusive is not null)
        {
            conditions.Add(key.Compare(range.LowerExclusive, ">", command, "lo"));
        }

        if (range.UpperInclusive is not null)
        {
            conditions.Add(key.Compare(range.UpperInclusive, "<=", command, "hi"));
        }

        string where = conditions.Count == 0 ? "" : "WHERE " + string.Join(" AND ", conditions);
        // One aggregate: the server evaluates the row's text once per aggregate, and building it is most of the cost
        // (a second one, BIT_XOR, made the query 1.6 times as long). Why the sum alone is as strong: docs/correctness.md.
        command.CommandText = $"SELECT COUNT(*), CAST(COALESCE(SUM(CRC32({row})), 0) AS CHAR) FROM {MySqlSql.Quote(table)} {where}";
        command.CommandTimeout = 600;
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new ChunkChecksum(reader.GetInt64(0), reader.GetString(1));
    }

    /// <summary>Deletes the range from the shadow and copies it again, in one transaction, under the copy's shared row locks.</summary>
    private async Task RepairAsync(KeyRange range, CancellationToken cancellationToken)
    {
        await MySqlRetry.RunAsync(async () =>
        {
            await using var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            await using MySqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
            await using (var delete = new MySqlCommand { Connection = connection, Transaction = transaction })
            {
                var conditions = new List<string>();
                if (range.LowerExclusive is not null)
                {
                    conditions.Add(keyInShadow.Compare(range.LowerExclusive, ">", delete, "lo"));
                }

                if (range.UpperInclusive is not null)
                {
                    conditions.Add(keyInShadow.Compare(range.UpperInclusive, "<=", delete, "hi"));
                }

                delete.CommandText = $"DELETE FROM {MySqlSql.Quote(shadow)}{(conditions.Count == 0 ? "" : " WHERE " + string.Join(" AND ", conditions))}";
                await delete.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return true;
        }, cancellationToken);
        // Copied again in pieces of at most RepairPieceRows, each under its own shared row locks: a chunk is compared
        // whole, but application writes to its rows should wait no longer than for one copy chunk.
        var copy = new Copy.MySqlCopySource(connectionString, original, shadow, originalKey, mapping);
        RowKey? after = range.LowerExclusive;
        while (true)
        {
            RowKey? end = await copy.FindChunkEndAsync(after, RepairPieceRows, range.UpperInclusive, cancellationToken);
            await copy.CopyRangeAsync(new KeyRange(range.Sequence, after, end ?? range.UpperInclusive), cancellationToken);
            if (end is null)
            {
                return;
            }

            after = end;
        }
    }

    /// <summary>Rows a repair copies under one statement's shared locks.</summary>
    public const int RepairPieceRows = 10_000;

    private static async Task ExecuteAsync(MySqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The two snapshot connections, one per table, opened at one instant.</summary>
    private sealed class SnapshotPair(MySqlConnection original, MySqlConnection shadow) : IAsyncDisposable
    {
        public MySqlConnection Original => original;

        public MySqlConnection Shadow => shadow;

        public async ValueTask DisposeAsync()
        {
            await original.DisposeAsync();
            await shadow.DisposeAsync();
        }
    }

    /// <summary>Each table has its own snapshot connection: both sides of a chunk are summed at once.</summary>
    private sealed class Snapshots(SnapshotPair pair, (TableName Table, MySqlKeyPredicate Key, string Row) original, (TableName Table, MySqlKeyPredicate Key, string Row) shadow)
        : IChunkSnapshots
    {
        public async Task<(ChunkChecksum Original, ChunkChecksum Shadow)> ChecksumAsync(KeyRange range, CancellationToken cancellationToken)
        {
            Task<ChunkChecksum> a = MySqlVerifier.ChecksumAsync(pair.Original, original.Table, original.Key, original.Row, range, cancellationToken);
            Task<ChunkChecksum> b = MySqlVerifier.ChecksumAsync(pair.Shadow, shadow.Table, shadow.Key, shadow.Row, range, cancellationToken);
            return (await a, await b);
        }

        public ValueTask DisposeAsync() => pair.DisposeAsync();
    }
}
