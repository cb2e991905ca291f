using MySqlConnector;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Checkpoint;

/// <summary>
/// Keeps the checkpoint as one row (id 2, JSON in `value`) of the bookkeeping table &lt;table&gt;_osc_log, next to the
/// heartbeat's row: it exists exactly as long as the migration's other leftovers, and `osc cleanup` removes it with them.
/// </summary>
public sealed class MySqlCheckpointStore(string connectionString, TableName logTable) : ICheckpointStore
{
    public const int CheckpointId = 2;

    public async Task SaveAsync(MigrationCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        string json = CheckpointJson.Serialize(checkpoint);
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand(
            $"INSERT INTO {MySqlSql.Quote(logTable)} (id, ts, value) VALUES ({CheckpointId}, NOW(6), @v) ON DUPLICATE KEY UPDATE ts = NOW(6), value = @v",
            connection);
        command.Parameters.AddWithValue("@v", json);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<MigrationCheckpoint?> LoadAsync(CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand($"SELECT value FROM {MySqlSql.Quote(logTable)} WHERE id = {CheckpointId}", connection);
        try
        {
            object? value = await command.ExecuteScalarAsync(cancellationToken);
            return value is string json ? CheckpointJson.Deserialize(json) : null;
        }
        catch (MySqlException e) when (e.ErrorCode == MySqlErrorCode.NoSuchTable)
        {
            return null;
        }
    }
}
