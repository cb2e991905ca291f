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
/// (normalised, as in the checkpoint), the old table's oid, and the materialized views captured in the swap, which are
/// rebuilt after it. The row goes with the bookkeeping table when the run ends; a run killed before that leaves it, and
/// `--resume` finishes the rebuild from it, while `osc cleanup` reports the views still on the old table with the
/// statements that move them.
/// </summary>
public sealed record PostgresAfterSwap(string Statement, uint OldTable, IReadOnlyList<PostgresMaterializedViews.View> MaterializedViews)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public string Serialize() => JsonSerializer.Serialize(this, Json);

    /// <summary>Written on the swap's connection, inside its transaction (search_path = pg_catalog).</summary>
    public async Task SaveAsync(NpgsqlConnection swap, TableName log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(swap);
        ArgumentNullException.ThrowIfNull(log);
        await using var command = new NpgsqlCommand(
            $"INSERT INTO {PostgresSql.Quote(log)} (id, value) VALUES ({PostgresCheckpointStore.AfterSwapId}, $1) " +
            "ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = clock_timestamp()", swap);
        command.Parameters.Add(new NpgsqlParameter { Value = Serialize() });
        await command.ExecuteNonQueryAsync(cancellationToken);
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
