using System.Text;
using Npgsql;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Apply;

/// <summary>
/// Writes a de-duplicated batch of replicated changes to the shadow table in one transaction. Rows arrive in the
/// original's column order and PostgreSQL's text form; each becomes a VALUES row cast to the original's column types
/// and named like the original's columns, so the shadow's columns are computed from it by the same expressions the
/// copy uses on the original (<paramref name="sourceExpressions"/>: the column itself, or the ALTER's USING
/// expression) and the same assignment casts. In order: rows with unsent (unchanged TOAST) columns, which write only
/// the sent columns and keep the rest from the shadow's row as it was before the batch; deletes by key; upserts as
/// INSERT ... OVERRIDING SYSTEM VALUE ... ON CONFLICT (key) DO UPDATE. Each group goes in key order, the order other
/// batches lock rows in. A deadlock or serialization failure retries the batch; a conflict on another unique index
/// (rows that swapped a unique value within the batch) retries it deleting every key of the batch before inserting.
/// </summary>
public sealed class PostgresChangeWriter : IChangeWriter
{
    // PostgreSQL allows 65,535 parameters per statement.
    private const int MaxParameters = 30_000;
    private const int MaxAttempts = 8;

    private readonly string _connectionString;
    private readonly TableName _original;
    private readonly TableName _shadow;
    private readonly IReadOnlyList<(string Name, string Type)> _sourceColumns;
    private readonly IReadOnlyList<string> _originalKey;
    private readonly IReadOnlyList<string> _keyInShadow;
    private readonly ColumnMapping _mapping;
    private readonly Dictionary<string, string> _types;
    private readonly string _targets;
    private readonly string _expressions;
    private readonly string _valuesAlias;

    /// <param name="sourceColumns">Every column of the original in its order, with its type (format_type): the layout of a replicated row.</param>
    /// <param name="sourceExpressions">Per shadow column, the SQL over the original's columns that yields it; the source column itself when absent.</param>
    public PostgresChangeWriter(string connectionString, TableName original, TableName shadow, IReadOnlyList<(string Name, string Type)> sourceColumns,
        IReadOnlyList<string> originalKey, IReadOnlyList<string> keyInShadow, ColumnMapping mapping, IReadOnlyDictionary<string, string>? sourceExpressions = null)
    {
        ArgumentNullException.ThrowIfNull(sourceColumns);
        ArgumentNullException.ThrowIfNull(mapping);
        _connectionString = connectionString;
        _original = original;
        _shadow = shadow;
        _sourceColumns = sourceColumns;
        _originalKey = originalKey;
        _keyInShadow = keyInShadow;
        _mapping = mapping;
        _types = sourceColumns.ToDictionary(c => c.Name, c => c.Type, StringComparer.Ordinal);
        _targets = string.Join(", ", mapping.TargetColumns.Select(PostgresSql.Quote));
        _expressions = string.Join(", ", mapping.Pairs.Select(p => Expression(p, sourceExpressions)));
        _valuesAlias = "s(" + string.Join(", ", sourceColumns.Select(c => PostgresSql.Quote(c.Name))) + ")";
        SentExpression = p => Expression(p, sourceExpressions);
    }

    /// <summary>Rows with unsent columns that were not in the shadow table and were read again from the original.</summary>
    public long RowsReread { get; private set; }

    private Func<(int SourceIndex, string Source, string Target), string> SentExpression { get; }

    public async Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        bool deleteFirst = false;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await WriteOnceAsync(batch, deleteFirst, cancellationToken);
                return;
            }
            catch (PostgresException e) when (attempt < MaxAttempts && e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(10, 50) * attempt), cancellationToken);
            }
            // An exclusion constraint collides as a unique index does, under another SQLSTATE.
            catch (PostgresException e) when (!deleteFirst && e.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.ExclusionViolation)
            {
                deleteFirst = true;
            }
            catch (PostgresException e) when (PostgresShadowWrites.DoesNotFit(e))
            {
                throw PostgresShadowWrites.Explain(e, "a row the application wrote during the migration");
            }
        }
    }

    private async Task WriteOnceAsync(PendingBatch batch, bool deleteFirst, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        var partials = batch.Partials.OrderBy(p => p.Key, RowKeyComparer.Instance).ToList();
        var moves = partials.Where(p => p.MovesKey).ToList();
        if (moves.Count > 0)
        {
            // The rows moved rows keep their unsent values from, as they were before anything of this batch.
            await using var snapshot = new NpgsqlCommand { Connection = connection, Transaction = transaction };
            snapshot.CommandText = $"CREATE TEMP TABLE osc_fill ON COMMIT DROP AS SELECT * FROM {PostgresSql.Quote(_shadow)} WHERE "
                                   + KeyIn(_keyInShadow, moves.Select(m => m.FillFrom).Distinct().ToList(), snapshot);
            await snapshot.ExecuteNonQueryAsync(cancellationToken);
        }

        foreach (PartialUpdate partial in partials)
        {
            bool written = partial.MovesKey
                ? await MoveAsync(connection, transaction, partial, cancellationToken)
                : await UpdateSentAsync(connection, transaction, partial, cancellationToken);
            if (!written)
            {
                await RereadAsync(connection, transaction, partial.Key, cancellationToken);
            }
        }

        IEnumerable<RowKey> deletes = deleteFirst ? batch.Deletes.Concat(batch.Upserts.Select(u => u.Key)) : batch.Deletes;
        int keysPerStatement = Math.Max(1, MaxParameters / Math.Max(1, _originalKey.Count));
        foreach (RowKey[] keys in deletes.Order(RowKeyComparer.Instance).Chunk(keysPerStatement))
        {
            await using var delete = new NpgsqlCommand { Connection = connection, Transaction = transaction };
            delete.CommandText = $"DELETE FROM {PostgresSql.Quote(_shadow)} WHERE {KeyIn(_keyInShadow, keys, delete)}";
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        var nonKey = _mapping.TargetColumns.Where(c => !_keyInShadow.Contains(c, StringComparer.Ordinal)).ToList();
        string onConflict = $" ON CONFLICT ({string.Join(", ", _keyInShadow.Select(PostgresSql.Quote))}) "
                            + (nonKey.Count == 0 ? "DO NOTHING" : "DO UPDATE SET " + string.Join(", ", nonKey.Select(c => $"{PostgresSql.Quote(c)} = EXCLUDED.{PostgresSql.Quote(c)}")));
        int rowsPerStatement = Math.Max(1, MaxParameters / Math.Max(1, _sourceColumns.Count));
        foreach (var rows in batch.Upserts.OrderBy(u => u.Key, RowKeyComparer.Instance).Chunk(rowsPerStatement))
        {
            await using var insert = new NpgsqlCommand { Connection = connection, Transaction = transaction };
            string values = Values(insert, rows.Select(r => r.Row).ToList());
            insert.CommandText = $"INSERT INTO {PostgresSql.Quote(_shadow)} ({_targets}) OVERRIDING SYSTEM VALUE SELECT {_expressions} FROM {values}{onConflict}";
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Writes only the sent columns of a row that kept its key; false when the shadow has no such row.</summary>
    private async Task<bool> UpdateSentAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PartialUpdate partial, CancellationToken cancellationToken)
    {
        var sent = _mapping.Pairs.Where(p => partial.Row[p.SourceIndex] is not UnchangedValue && !_keyInShadow.Contains(p.Target, StringComparer.Ordinal)).ToList();
        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        // Nothing sent that the shadow keeps: the row only has to be there.
        string set = sent.Count == 0
            ? string.Join(", ", _keyInShadow.Select(k => $"{PostgresSql.Quote(k)} = {PostgresSql.Quote(k)}"))
            : $"({string.Join(", ", sent.Select(p => PostgresSql.Quote(p.Target)))}) = (SELECT {string.Join(", ", sent.Select(SentExpression))} FROM {Values(command, [partial.Row])})";
        command.CommandText = $"UPDATE {PostgresSql.Quote(_shadow)} SET {set} WHERE {KeyIn(_keyInShadow, [partial.Key], command)}";
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>Writes a moved row: its sent columns, and the rest from the row it moved from; false when that row is not in the shadow.</summary>
    private async Task<bool> MoveAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PartialUpdate partial, CancellationToken cancellationToken)
    {
        await using (var delete = new NpgsqlCommand { Connection = connection, Transaction = transaction })
        {
            delete.CommandText = $"DELETE FROM {PostgresSql.Quote(_shadow)} WHERE {KeyIn(_keyInShadow, [partial.Key], delete)}";
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        // Unqualified names in the expressions resolve to the VALUES row, the innermost scope; the kept values are f's.
        string select = string.Join(", ", _mapping.Pairs.Select(p => partial.Row[p.SourceIndex] is UnchangedValue ? "f." + PostgresSql.Quote(p.Target) : SentExpression(p)));
        command.CommandText = $"""
            INSERT INTO {PostgresSql.Quote(_shadow)} ({_targets}) OVERRIDING SYSTEM VALUE
            SELECT x.* FROM osc_fill f CROSS JOIN LATERAL (SELECT {select} FROM {Values(command, [partial.Row])}) x
            WHERE {KeyIn(_keyInShadow.Select(k => "f." + PostgresSql.Quote(k)).ToList(), [partial.FillFrom], command, quoted: true)}
            """;
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>
    /// A row with unsent columns whose earlier state never reached the shadow table: the copy read its range before
    /// the row got there and the row's own earlier state arrived under another key (a moved key). The original has the
    /// values; reading its current row is safe because every later change to it is still ahead in the stream.
    /// </summary>
    private async Task RereadAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, RowKey key, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        command.CommandText = $"""
            INSERT INTO {PostgresSql.Quote(_shadow)} ({_targets}) OVERRIDING SYSTEM VALUE
            SELECT {_expressions} FROM {PostgresSql.Quote(_original)} WHERE {KeyIn(_originalKey, [key], command)}
            ON CONFLICT DO NOTHING
            """;
        await command.ExecuteNonQueryAsync(cancellationToken);
        RowsReread++;
    }

    /// <summary>(VALUES (...), ...) AS s(original's columns), each value cast to its original column's type.</summary>
    private string Values(NpgsqlCommand command, List<IReadOnlyList<object?>> rows)
    {
        var sql = new StringBuilder("(VALUES ");
        for (int r = 0; r < rows.Count; r++)
        {
            sql.Append(r == 0 ? "(" : ", (");
            for (int c = 0; c < _sourceColumns.Count; c++)
            {
                object? value = rows[r][c] is UnchangedValue ? null : rows[r][c];
                sql.Append(c == 0 ? "" : ", ").Append(Cast(command, value, _sourceColumns[c].Type));
            }

            sql.Append(')');
        }

        return sql.Append(") AS ").Append(_valuesAlias).ToString();
    }

    /// <summary>(k1, k2) IN ((...), ...) with each key value cast to its original column's type.</summary>
    private string KeyIn(IReadOnlyList<string> columns, IReadOnlyList<RowKey> keys, NpgsqlCommand command, bool quoted = false)
    {
        var sql = new StringBuilder("(");
        sql.AppendJoin(", ", quoted ? columns : columns.Select(PostgresSql.Quote)).Append(") IN (");
        for (int k = 0; k < keys.Count; k++)
        {
            sql.Append(k == 0 ? "(" : ", (");
            for (int c = 0; c < _originalKey.Count; c++)
            {
                sql.Append(c == 0 ? "" : ", ").Append(Cast(command, keys[k].Values[c], _types[_originalKey[c]]));
            }

            sql.Append(')');
        }

        return sql.Append(')').ToString();
    }

    private static string Cast(NpgsqlCommand command, object? value, string type)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        return $"CAST(${command.Parameters.Count} AS {type})";
    }

    private static string Expression((int SourceIndex, string Source, string Target) pair, IReadOnlyDictionary<string, string>? sourceExpressions) =>
        sourceExpressions is not null && sourceExpressions.TryGetValue(pair.Target, out string? expression) ? expression : PostgresSql.Quote(pair.Source);
}
