using System.Text;
using Npgsql;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Apply;

/// <summary>
/// Writes a de-duplicated batch of replicated changes to the shadow table in one transaction. Values arrive in
/// PostgreSQL's text form and are cast to the original column's type, from which the shadow's column takes them as an
/// INSERT ... SELECT from the original would. In order: rows with unsent (unchanged TOAST) columns, which update only
/// the columns that were sent, taking the rest from the shadow's row as it was before the batch; then deletes by key;
/// then upserts (INSERT ... OVERRIDING SYSTEM VALUE ... ON CONFLICT (key) DO UPDATE). Each group goes in key order, the
/// order the copy and other batches lock rows in. A deadlock or serialization failure retries the batch; a conflict on
/// another unique index (two rows that swapped a unique value within the batch) retries it deleting every key of the
/// batch before inserting. <paramref name="sourceTypes"/> maps each original column to its SQL type.
/// </summary>
public sealed class PostgresChangeWriter(
    string connectionString, TableName original, TableName shadow, IReadOnlyList<string> originalKey, IReadOnlyList<string> keyInShadow,
    ColumnMapping mapping, IReadOnlyDictionary<string, string> sourceTypes) : IChangeWriter
{
    // PostgreSQL allows 65,535 parameters per statement.
    private const int MaxParameters = 30_000;
    private const int MaxAttempts = 8;

    /// <summary>Rows with unsent columns that were not in the shadow table and were read again from the original.</summary>
    public long RowsReread { get; private set; }

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
            catch (PostgresException e) when (!deleteFirst && e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                deleteFirst = true;
            }
        }
    }

    private async Task WriteOnceAsync(PendingBatch batch, bool deleteFirst, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        var partials = batch.Partials.OrderBy(p => p.Key, RowKeyComparer.Instance).ToList();
        var moves = partials.Where(p => p.MovesKey).ToList();
        if (moves.Count > 0)
        {
            // The rows the moved rows keep their unsent values from, as they were before anything of this batch.
            await using var snapshot = new NpgsqlCommand { Connection = connection, Transaction = transaction };
            snapshot.CommandText = $"CREATE TEMP TABLE osc_fill ON COMMIT DROP AS SELECT * FROM {PostgresSql.Quote(shadow)} WHERE "
                                   + KeyIn(keyInShadow, moves.Select(m => m.FillFrom).Distinct().ToList(), snapshot);
            await snapshot.ExecuteNonQueryAsync(cancellationToken);
        }

        foreach (PartialUpdate partial in partials)
        {
            if (!await WritePartialAsync(connection, transaction, partial, cancellationToken))
            {
                await RereadAsync(connection, transaction, partial.Key, cancellationToken);
            }
        }

        IEnumerable<RowKey> deletes = deleteFirst ? batch.Deletes.Concat(batch.Upserts.Select(u => u.Key)) : batch.Deletes;
        int keysPerStatement = Math.Max(1, MaxParameters / Math.Max(1, originalKey.Count));
        foreach (RowKey[] keys in deletes.Order(RowKeyComparer.Instance).Chunk(keysPerStatement))
        {
            await using var delete = new NpgsqlCommand { Connection = connection, Transaction = transaction };
            delete.CommandText = $"DELETE FROM {PostgresSql.Quote(shadow)} WHERE {KeyIn(keyInShadow, keys, delete)}";
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        string columns = string.Join(", ", mapping.TargetColumns.Select(PostgresSql.Quote));
        var nonKey = mapping.TargetColumns.Where(c => !keyInShadow.Contains(c, StringComparer.Ordinal)).ToList();
        string onConflict = $" ON CONFLICT ({string.Join(", ", keyInShadow.Select(PostgresSql.Quote))}) "
                            + (nonKey.Count == 0 ? "DO NOTHING" : "DO UPDATE SET " + string.Join(", ", nonKey.Select(c => $"{PostgresSql.Quote(c)} = EXCLUDED.{PostgresSql.Quote(c)}")));
        int rowsPerStatement = Math.Max(1, MaxParameters / Math.Max(1, mapping.Pairs.Count));
        foreach (var rows in batch.Upserts.OrderBy(u => u.Key, RowKeyComparer.Instance).Chunk(rowsPerStatement))
        {
            await using var insert = new NpgsqlCommand { Connection = connection, Transaction = transaction };
            var tuples = new List<string>(rows.Length);
            foreach (var (_, row) in rows)
            {
                object?[] values = mapping.Project(row);
                tuples.Add("(" + string.Join(", ", values.Select((v, c) => Cast(insert, v, mapping.Pairs[c].Source))) + ")");
            }

            insert.CommandText = $"INSERT INTO {PostgresSql.Quote(shadow)} ({columns}) OVERRIDING SYSTEM VALUE VALUES {string.Join(", ", tuples)}{onConflict}";
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Writes only the sent columns; false when the shadow table has no row to take the others from.</summary>
    private async Task<bool> WritePartialAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PartialUpdate partial, CancellationToken cancellationToken)
    {
        object?[] values = mapping.Project(partial.Row);
        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        if (!partial.MovesKey)
        {
            var sets = new List<string>();
            for (int c = 0; c < values.Length; c++)
            {
                if (values[c] is not UnchangedValue && !keyInShadow.Contains(mapping.Pairs[c].Target, StringComparer.Ordinal))
                {
                    sets.Add($"{PostgresSql.Quote(mapping.Pairs[c].Target)} = {Cast(command, values[c], mapping.Pairs[c].Source)}");
                }
            }

            // Nothing sent that the shadow keeps: the row only has to be there.
            string set = sets.Count > 0 ? string.Join(", ", sets) : string.Join(", ", keyInShadow.Select(k => $"{PostgresSql.Quote(k)} = {PostgresSql.Quote(k)}"));
            command.CommandText = $"UPDATE {PostgresSql.Quote(shadow)} SET {set} WHERE {KeyIn(keyInShadow, [partial.Key], command)}";
            return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
        }

        var select = new List<string>(values.Length);
        for (int c = 0; c < values.Length; c++)
        {
            select.Add(values[c] is UnchangedValue ? "f." + PostgresSql.Quote(mapping.Pairs[c].Target) : Cast(command, values[c], mapping.Pairs[c].Source));
        }

        await using (var delete = new NpgsqlCommand { Connection = connection, Transaction = transaction })
        {
            delete.CommandText = $"DELETE FROM {PostgresSql.Quote(shadow)} WHERE {KeyIn(keyInShadow, [partial.Key], delete)}";
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        command.CommandText = $"""
            INSERT INTO {PostgresSql.Quote(shadow)} ({string.Join(", ", mapping.TargetColumns.Select(PostgresSql.Quote))}) OVERRIDING SYSTEM VALUE
            SELECT {string.Join(", ", select)} FROM osc_fill f WHERE {KeyIn(keyInShadow.Select(k => "f." + PostgresSql.Quote(k)).ToList(), [partial.FillFrom], command, quoted: true)}
            """;
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>
    /// A row with unsent columns whose earlier state never reached the shadow table: the copy read its range before
    /// the row got there and the row's own earlier state arrived by another key (a moved key). The original has the
    /// values; reading its current row is safe because every later change to it is still ahead in the stream.
    /// </summary>
    private async Task RereadAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, RowKey key, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        command.CommandText = $"""
            INSERT INTO {PostgresSql.Quote(shadow)} ({string.Join(", ", mapping.TargetColumns.Select(PostgresSql.Quote))}) OVERRIDING SYSTEM VALUE
            SELECT {string.Join(", ", mapping.SourceColumns.Select(PostgresSql.Quote))} FROM {PostgresSql.Quote(original)} WHERE {KeyIn(originalKey, [key], command)}
            ON CONFLICT DO NOTHING
            """;
        await command.ExecuteNonQueryAsync(cancellationToken);
        RowsReread++;
    }

    /// <summary>(k1, k2) IN ((...), ...) with each key value cast to its original column's type.</summary>
    private string KeyIn(IReadOnlyList<string> columns, IReadOnlyList<RowKey> keys, NpgsqlCommand command, bool quoted = false)
    {
        var sql = new StringBuilder("(");
        sql.AppendJoin(", ", quoted ? columns : columns.Select(PostgresSql.Quote)).Append(") IN (");
        for (int k = 0; k < keys.Count; k++)
        {
            sql.Append(k == 0 ? "(" : ", (");
            for (int c = 0; c < originalKey.Count; c++)
            {
                sql.Append(c == 0 ? "" : ", ").Append(Cast(command, keys[k].Values[c], originalKey[c]));
            }

            sql.Append(')');
        }

        return sql.Append(')').ToString();
    }

    private string Cast(NpgsqlCommand command, object? value, string sourceColumn)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        return $"CAST(${command.Parameters.Count} AS {sourceTypes[sourceColumn]})";
    }
}
