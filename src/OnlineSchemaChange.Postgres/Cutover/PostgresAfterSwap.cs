using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Checkpoint;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Cutover;

/// <summary>
/// What is left to do once the swap has committed, written into row <see cref="PostgresCheckpointStore.AfterSwapId"/>
/// of &lt;table&gt;_osc_log by the swap's own transaction, so it exists exactly when the swap happened: the ALTER
/// (normalised, as in the checkpoint), the old table's oid, the foreign keys added NOT VALID by the swap and validated
/// after it, and the materialized views captured in the swap, which are rebuilt after it. The row goes with the
/// bookkeeping table when the run ends; a run killed before that leaves it, and `--resume` finishes the validation and
/// the rebuild from it, while `osc cleanup` reports what is left undone with the statements that do it.
/// </summary>
public sealed record PostgresAfterSwap(string Statement, uint OldTable, IReadOnlyList<PostgresMaterializedViews.View> MaterializedViews,
    IReadOnlyList<PostgresAfterSwap.ForeignKey> ToValidate)
{
    /// <summary>A foreign key to validate: the table it is on (as regclass prints it, qualified) and its name.</summary>
    public sealed record ForeignKey(string Table, string Name)
    {
        public string ValidateStatement => $"ALTER TABLE {Table} VALIDATE CONSTRAINT {PostgresSql.Quote(Name)}";
    }

    /// <summary>The recorded keys that are still NOT VALID.</summary>
    public async Task<IReadOnlyList<ForeignKey>> NotValidAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var pending = new List<ForeignKey>();
        foreach (ForeignKey key in ToValidate ?? [])
        {
            await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2 AND NOT convalidated", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = key.Table });
            command.Parameters.Add(new NpgsqlParameter { Value = key.Name });
            if ((long)(await command.ExecuteScalarAsync(cancellationToken))! > 0)
            {
                pending.Add(key);
            }
        }

        return pending;
    }

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public string Serialize() => JsonSerializer.Serialize(this, Json);

    /// <summary>The statement that writes the record, sent in the swap's batch inside its transaction (search_path = pg_catalog).</summary>
    public NpgsqlBatchCommand SaveCommand(TableName log)
    {
        ArgumentNullException.ThrowIfNull(log);
        var command = new NpgsqlBatchCommand(
            $"INSERT INTO {PostgresSql.Quote(log)} (id, value) VALUES ({PostgresCheckpointStore.AfterSwapId}, $1) " +
            "ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = clock_timestamp()");
        command.Parameters.Add(new NpgsqlParameter { Value = Serialize() });
        return command;
    }

    /// <summary>The record a swapped but unfinished run left, or null (no bookkeeping table, or no swap recorded).</summary>
    public static async Task<PostgresAfterSwap?> LoadAsync(PostgresCheckpointStore store, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        return await store.LoadAfterSwapAsync(cancellationToken) is { } json ? Parse(json, store.Table) : null;
    }

    /// <summary>Reads the record from row <see cref="PostgresCheckpointStore.AfterSwapId"/> of <paramref name="log"/>.</summary>
    public static PostgresAfterSwap Parse(string json, TableName log)
    {
        ArgumentNullException.ThrowIfNull(log);
        try
        {
            return JsonSerializer.Deserialize<PostgresAfterSwap>(json, Json) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new OscException($"Row {PostgresCheckpointStore.AfterSwapId} of {log}, what was left to do after the swap, cannot be read: {e.Message}",
                $"Check the materialized views that still read {log.Schema}.<table>_osc_old yourself, then drop {log}.", e);
        }
    }
}
