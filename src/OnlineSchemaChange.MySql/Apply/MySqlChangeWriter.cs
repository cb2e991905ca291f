using MySqlConnector;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Apply;

/// <summary>
/// Writes a de-duplicated batch of replicated changes to the shadow table in one transaction: DELETE by key, then
/// REPLACE of whole rows, so replaying a batch twice (after a crash) leaves the same rows.
/// </summary>
public sealed class MySqlChangeWriter(string connectionString, TableName shadow, MySqlKeyPredicate shadowKey, ColumnMapping mapping) : IChangeWriter
{
    // Stay well below the protocol's 65,535 placeholders per statement.
    private const int MaxParameters = 30_000;

    public async Task WriteAsync(PendingBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using MySqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        int keysPerStatement = Math.Max(1, MaxParameters / Math.Max(1, shadowKey.Columns.Count));
        foreach (var keys in batch.Deletes.Chunk(keysPerStatement))
        {
            await using var command = new MySqlCommand { Connection = connection, Transaction = transaction };
            command.CommandText = $"DELETE FROM {MySqlSql.Quote(shadow)} WHERE {shadowKey.In(keys, command, "k")}";
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        string columns = string.Join(", ", mapping.TargetColumns.Select(MySqlSql.Quote));
        int rowsPerStatement = Math.Max(1, MaxParameters / Math.Max(1, mapping.Pairs.Count));
        foreach (var rows in batch.Upserts.Chunk(rowsPerStatement))
        {
            await using var command = new MySqlCommand { Connection = connection, Transaction = transaction };
            var tuples = new List<string>(rows.Length);
            for (int r = 0; r < rows.Length; r++)
            {
                object?[] values = mapping.Project(rows[r]);
                var names = new string[values.Length];
                for (int c = 0; c < values.Length; c++)
                {
                    names[c] = $"@v{r}_{c}";
                    command.Parameters.AddWithValue(names[c], values[c]);
                }

                tuples.Add("(" + string.Join(", ", names) + ")");
            }

            command.CommandText = $"REPLACE INTO {MySqlSql.Quote(shadow)} ({columns}) VALUES {string.Join(", ", tuples)}";
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }
}
