using MySqlConnector;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Apply;

/// <summary>
/// Writes a de-duplicated batch of replicated changes to the shadow table in one transaction: every key of the batch
/// is deleted, then the upserted rows are inserted whole. Keys are the original table's, so this stays right when the
/// ALTER changes the primary key (a REPLACE keyed on the shadow's new key would keep a row's old version), and
/// replaying a batch twice after a crash leaves the same rows. <c>originalKeyInShadow</c> is the original's key
/// columns under the names the shadow gives them. Batches go through one session, kept open between them and opened
/// again after a failure; dispose the writer once the replay has stopped.
/// </summary>
public sealed class MySqlChangeWriter(string connectionString, TableName shadow, MySqlKeyPredicate originalKeyInShadow, ColumnMapping mapping)
    : IChangeWriter, IAsyncDisposable
{
    private readonly MySqlReusedSession _session = new(connectionString, MySqlShadowWrites.SessionSetup);

    // Stay well below the protocol's 65,535 placeholders per statement.
    private const int MaxParameters = 30_000;

    public Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken) =>
        MySqlRetry.RunAsync(async () =>
        {
            await WriteOnceAsync(batch, cancellationToken);
            return true;
        }, cancellationToken);

    private async Task WriteOnceAsync(PendingBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        // A batch is one transaction of final states: on a session the server ended while idle it rolled back, and
        // running it again on a fresh one is safe.
        try
        {
            await _session.RunAsync(connection => WriteInTransactionAsync(connection, batch, cancellationToken), againOnStale: true, cancellationToken);
        }
        catch (MySqlException e) when (MySqlShadowWrites.DoesNotFit(e))
        {
            throw MySqlShadowWrites.Explain(e, "a row the application wrote during the migration");
        }
    }

    public ValueTask DisposeAsync() => _session.DisposeAsync();

    private async Task WriteInTransactionAsync(MySqlConnection connection, PendingBatch batch, CancellationToken cancellationToken)
    {
        await using MySqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        int keysPerStatement = Math.Max(1, MaxParameters / Math.Max(1, originalKeyInShadow.Columns.Count));
        // Key order, the copier's order: both then take row locks in the same direction and rarely deadlock.
        foreach (var keys in batch.Deletes.Concat(batch.Upserts.Select(u => u.Key)).Order(RowKeyComparer.Instance).Chunk(keysPerStatement))
        {
            await using var command = new MySqlCommand { Connection = connection, Transaction = transaction };
            command.CommandText = $"DELETE FROM {MySqlSql.Quote(shadow)} WHERE {originalKeyInShadow.In(keys, command, "k")}";
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        string columns = string.Join(", ", mapping.TargetColumns.Select(MySqlSql.Quote));
        int rowsPerStatement = Math.Max(1, MaxParameters / Math.Max(1, mapping.Pairs.Count));
        // Once every key of the batch is deleted, its rows are the source's state at the batch's end and cannot
        // conflict with each other on any unique key, so they too can go in key order.
        foreach (var rows in batch.Upserts.OrderBy(u => u.Key, RowKeyComparer.Instance).Chunk(rowsPerStatement))
        {
            await using var command = new MySqlCommand { Connection = connection, Transaction = transaction };
            var tuples = new List<string>(rows.Length);
            for (int r = 0; r < rows.Length; r++)
            {
                object?[] values = mapping.Project(rows[r].Row);
                var names = new string[values.Length];
                for (int c = 0; c < values.Length; c++)
                {
                    names[c] = $"@v{r}_{c}";
                    command.Parameters.AddWithValue(names[c], values[c]);
                }

                tuples.Add("(" + string.Join(", ", names) + ")");
            }

            command.CommandText = $"INSERT INTO {MySqlSql.Quote(shadow)} ({columns}) VALUES {string.Join(", ", tuples)}";
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }
}
