using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Migration;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Copy;

/// <summary>
/// Copies key ranges of the original into the shadow, each in one short statement (its own transaction):
/// INSERT INTO shadow ... OVERRIDING SYSTEM VALUE SELECT ... FROM original WHERE key in range ORDER BY key
/// ON CONFLICT DO NOTHING. The SELECT is a plain MVCC read: it takes no row locks, so the application never waits on
/// the copy. Identity columns keep their values (OVERRIDING SYSTEM VALUE), generated columns are computed by the
/// shadow, retyped columns go through the ALTER's USING expression or the assignment cast a native ALTER would use.
/// Rows already in the shadow (the replay got there first) are left alone. When the replay leaves keys ahead of the
/// copy alone, a chunk tries a plain INSERT first and falls back to ON CONFLICT DO NOTHING only if a key is there.
/// </summary>
public sealed class PostgresCopySource : ICopySource, IKeySpanSource
{
    private readonly string connectionString;
    private readonly TableName original;
    private readonly TableName shadow;
    private readonly PostgresKey key;
    private readonly string insert;

    private const int MaxSnapshotAttempts = 1000;

    private readonly PostgresCopyOrdering? ordering;

    /// <param name="ordering">
    /// For a copy that runs next to the replay: the fence the applier waits on and the transactions the stream has
    /// passed on (docs/correctness.md). Without it, the copy is safe only while nothing replays.
    /// </param>
    public PostgresCopySource(string connectionString, PostgresTableFacts facts, PostgresShadowTable shadowTable, PostgresCopyOrdering? ordering = null)
    {
        this.ordering = ordering;
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(shadowTable);
        this.connectionString = connectionString;
        original = facts.Table;
        shadow = shadowTable.Table;
        key = KeyOf(facts);
        string targets = string.Join(", ", shadowTable.Mapping.TargetColumns.Select(PostgresSql.Quote));
        string sources = string.Join(", ", shadowTable.Mapping.TargetColumns.Select(t => shadowTable.SourceExpressions[t]));
        insert = $"INSERT INTO {PostgresSql.Quote(shadow)} ({targets}) OVERRIDING SYSTEM VALUE SELECT {sources} FROM {PostgresSql.Quote(original)}";
    }

    /// <summary>The original's key with each column's type, as comparisons need it.</summary>
    public static PostgresKey KeyOf(PostgresTableFacts facts)
    {
        ArgumentNullException.ThrowIfNull(facts);
        return new PostgresKey(facts.Key, facts.Key.Select(k => facts.Column(k).Type).ToList());
    }

    public async Task<KeySpan?> ReadKeySpanAsync(CancellationToken cancellationToken)
    {
        if (key.Columns.Count != 1)
        {
            return null;
        }

        // reltuples is -1 until the table was first analyzed or vacuumed: no estimate, and the key is walked.
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"SELECT min({key.ColumnList}), max({key.ColumnList}), (SELECT reltuples::bigint FROM pg_class WHERE oid = @t::regclass) FROM {PostgresSql.Quote(original)}",
            connection);
        command.Parameters.AddWithValue("t", PostgresSql.Quote(original));
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) && !reader.IsDBNull(0) && !reader.IsDBNull(2)
            ? new KeySpan(reader.GetValue(0), reader.GetValue(1), reader.GetInt64(2))
            : null;
    }

    public async Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        string where = afterKey is null ? "" : "WHERE " + key.Compare(afterKey, ">", command);
        command.CommandText = $"SELECT {key.ColumnList} FROM {PostgresSql.Quote(original)} {where} ORDER BY {key.ColumnList} LIMIT 1 OFFSET {rows - 1}";
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? PostgresKey.Read(reader, key.Columns.Count) : null;
    }

    public async Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(range);
        if (ordering is null)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            return await CopyAsync(connection, null, range, skipExisting: true, cancellationToken);
        }

        using IDisposable passage = ordering.Fence.Enter();
        bool skipExisting = !ordering.ShadowAheadEmpty;
        for (int attempt = 1; ; attempt++)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);

            // The snapshot is taken here; a transaction the stream already passed on but this snapshot still sees as
            // running (listed in xip, or at or past xmax) would be missing from the read while the replay may already
            // have applied it: take a new one.
            var running = new List<uint>();
            uint xmax;
            await using (var snapshot = new NpgsqlCommand(
                "SELECT (pg_snapshot_xmax(s)::text::numeric % 4294967296)::bigint, " +
                "ARRAY(SELECT (x::text::numeric % 4294967296)::bigint FROM pg_snapshot_xip(s) AS x) FROM pg_current_snapshot() AS s",
                connection, transaction))
            await using (NpgsqlDataReader reader = await snapshot.ExecuteReaderAsync(cancellationToken))
            {
                await reader.ReadAsync(cancellationToken);
                xmax = (uint)reader.GetInt64(0);
                running.AddRange(reader.GetFieldValue<long[]>(1).Select(x => (uint)x));
            }

            if (ordering.Received.AnyInvisibleTo(running, xmax))
            {
                await transaction.RollbackAsync(cancellationToken);
                if (attempt >= MaxSnapshotAttempts)
                {
                    throw new OscException($"A copy chunk of {original} could not get a snapshot that sees every replayed commit in {attempt} attempts.",
                        "A committed transaction stays invisible unusually long; check the server's health and run the migration again.");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(5), cancellationToken);
                continue;
            }

            long rows;
            try
            {
                rows = await CopyAsync(connection, transaction, range, skipExisting, cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.ExclusionViolation && !skipExisting)
            {
                // A key of the range is there after all: the replay wrote it between the range being handed out and
                // this chunk entering the fence, an ALTER's new unique key meets duplicates, or a value of a unique key
                // or exclusion constraint moved between rows meets its old row (which verification reports and
                // repairs). Copy the range again, keeping what is there: ON CONFLICT DO NOTHING covers exclusion
                // constraints too.
                await transaction.RollbackAsync(cancellationToken);
                skipExisting = true;
                continue;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                throw DeferrableCollision(e);
            }

            try
            {
                await transaction.CommitAsync(cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                throw DeferrableCollision(e);
            }

            return rows;
        }
    }

    /// <summary>
    /// A unique violation that ON CONFLICT DO NOTHING let through, or that came at the commit: a deferrable constraint,
    /// which ON CONFLICT does not arbitrate, met a value still held by another row's older version in the shadow.
    /// </summary>
    private OscException DeferrableCollision(PostgresException e) =>
        new($"A copy chunk of {original} collided on the deferrable unique constraint {e.ConstraintName} of the shadow: a value moved from one row to "
            + "another while the copy ran, and osc cannot yet copy around a deferred check.",
            "The original is untouched and the work is kept for --resume. Resume when the application moves fewer values of that key, or add the "
            + "constraint NOT DEFERRABLE (docs/operations.md, \"Unique keys whose values move between rows\").", e);

    private async Task<long> CopyAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, KeyRange range, bool skipExisting, CancellationToken cancellationToken)
    {
        try
        {
            return await CopyOrRefuseAsync(connection, transaction, range, skipExisting, cancellationToken);
        }
        catch (PostgresException e) when (PostgresShadowWrites.DoesNotFit(e))
        {
            throw PostgresShadowWrites.Explain(e, $"a row of {original} with a key {range.Describe()}");
        }
    }

    private async Task<long> CopyOrRefuseAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, KeyRange range, bool skipExisting, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandTimeout = 600;
        string where = key.Range(range.LowerExclusive, range.UpperInclusive, command);
        if (!skipExisting)
        {
            // A plain insert: no speculative insertion, about half the copy's time and a third less for the stream
            // to decode (docs/benchmarks.md). Every row of the range is inserted, so the count is the rows affected.
            command.CommandText = $"{insert} WHERE {where} ORDER BY {key.ColumnList}";
            return await command.ExecuteNonQueryAsync(cancellationToken);
        }

        // The count of rows the range covered, copied now or already there: what chunk sizing and progress want.
        command.CommandText = $"WITH copied AS ({insert} WHERE {where} ORDER BY {key.ColumnList} ON CONFLICT DO NOTHING RETURNING 1) " +
                              $"SELECT count(*) FROM {PostgresSql.Quote(original)} WHERE {where}";
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
