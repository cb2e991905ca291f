using Npgsql;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Checkpoint;

/// <summary>
/// The migration's bookkeeping table &lt;table&gt;_osc_log, next to the shadow, with one row per kind of record:
/// id 1 the shadow's layout (what a resume cannot read back from the catalog: which original index each shadow index
/// copies, and the plain indexes deferred until the copy is done), id 2 the checkpoint as JSON, id 6 (written by the
/// swap's transaction, <see cref="Cutover.PostgresAfterSwap"/>) what is left to do after the swap; ids 3 to 5 are the
/// MySQL store's, left free so one numbering documents both. A regular (logged)
/// table, so it survives a server crash as the shadow does. It is created with the shadow and goes with it: dropped
/// on success, on a failure that keeps nothing, and by `osc cleanup`.
/// </summary>
public sealed class PostgresCheckpointStore(string connectionString, TableName logTable) : ICheckpointStore
{
    public const int LayoutId = 1;

    public const int CheckpointId = 2;

    public const int AfterSwapId = 6;

    public TableName Table => logTable;

    public async Task CreateAsync(CancellationToken cancellationToken) => await ExecuteAsync(
        $"CREATE TABLE {PostgresSql.Quote(logTable)} (id int PRIMARY KEY, value text NOT NULL, updated_at timestamptz NOT NULL DEFAULT clock_timestamp())",
        null, cancellationToken);

    public Task SaveAsync(MigrationCheckpoint checkpoint, CancellationToken cancellationToken) =>
        WriteAsync(CheckpointId, CheckpointJson.Serialize(checkpoint), cancellationToken);

    public async Task<MigrationCheckpoint?> LoadAsync(CancellationToken cancellationToken) =>
        await ReadAsync(CheckpointId, cancellationToken) is { } json ? CheckpointJson.Deserialize(json) : null;

    public Task SaveLayoutAsync(string layout, CancellationToken cancellationToken) => WriteAsync(LayoutId, layout, cancellationToken);

    public Task<string?> LoadLayoutAsync(CancellationToken cancellationToken) => ReadAsync(LayoutId, cancellationToken);

    public Task<string?> LoadAfterSwapAsync(CancellationToken cancellationToken) => ReadAsync(AfterSwapId, cancellationToken);

    /// <summary>Drops the table; not cancellable, since it must go even when the operator pressed Ctrl-C.</summary>
    public async Task DropAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await ExecuteAsync($"DROP TABLE IF EXISTS {PostgresSql.Quote(logTable)}", null, timeout.Token);
    }

    private Task WriteAsync(int id, string value, CancellationToken cancellationToken) => ExecuteAsync(
        $"INSERT INTO {PostgresSql.Quote(logTable)} (id, value) VALUES ({id}, $1) ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = clock_timestamp()",
        value, cancellationToken);

    private async Task<string?> ReadAsync(int id, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"SELECT value FROM {PostgresSql.Quote(logTable)} WHERE id = {id}", connection);
        try
        {
            return await command.ExecuteScalarAsync(cancellationToken) as string;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return null;
        }
    }

    private async Task ExecuteAsync(string sql, string? value, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        if (value is not null)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
