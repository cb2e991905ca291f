using Npgsql;
using NpgsqlTypes;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Checkpoint;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Checkpoint;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// Decides whether an interrupted migration can be resumed, and refuses with the reason and the fix when it cannot:
/// nothing to resume, the swap already happened, the bookkeeping table, slot or publication gone, no checkpoint, a
/// different ALTER or a changed table, or a slot that can no longer give back every change after the checkpoint
/// (its WAL removed, or moved past the checkpoint by something other than osc). It only reads, and ends the
/// walsender a killed run left on the slot: a refused resume leaves every leftover for `osc cleanup`.
/// </summary>
public sealed class PostgresResume(NpgsqlConnection connection, TableName original, ShadowNames names, PostgresReplicationNames stream, PostgresCheckpointStore store)
{
    private string Cleanup => $"`osc cleanup <connection> --table {original}`";

    /// <summary>Checks the leftovers a resume needs are there: the shadow, the bookkeeping table, the slot and the publication.</summary>
    public async Task EnsureLeftoversAsync(CancellationToken cancellationToken)
    {
        var catalog = new PostgresCatalog(connection);
        bool shadow = await catalog.RelationAsync(original with { Name = names.Shadow }, cancellationToken) is not null;
        bool log = await catalog.RelationAsync(store.Table, cancellationToken) is not null;
        bool old = await catalog.RelationAsync(original with { Name = names.Old }, cancellationToken) is not null;
        bool slot = await catalog.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", cancellationToken, stream.Slot) > 0;
        bool publication = await catalog.ScalarAsync<long>("SELECT count(*) FROM pg_publication WHERE pubname = $1", cancellationToken, stream.Publication) > 0;
        if (!shadow && old)
        {
            throw new OscException(
                $"The interrupted migration of {original} had already swapped the tables: {original} has the new definition and the original is {original.Schema}.{names.Old}.",
                $"Nothing is left to resume. Remove the rest (slot, publication, bookkeeping table) with {Cleanup}; add --drop-old-table to drop the original too.");
        }

        if (!shadow)
        {
            throw new OscException($"There is no interrupted migration of {original} to resume: {original.Schema}.{names.Shadow} does not exist.",
                log || slot || publication ? $"Remove what is left of it with {Cleanup}, then run without --resume." : "Run without --resume.");
        }

        string? missing = !log ? $"the bookkeeping table {store.Table}, which holds the checkpoint,"
            : !slot ? $"its replication slot {stream.Slot}, which holds the changes made since the checkpoint,"
            : !publication ? $"its publication {stream.Publication}, which the slot streams the table's changes through,"
            : null;
        if (missing is not null)
        {
            throw new OscException($"{original.Schema}.{names.Shadow} exists but {missing} does not: the shadow cannot be resumed.",
                $"Remove the leftovers with {Cleanup}, then run without --resume.");
        }
    }

    /// <summary>The checkpoint to resume from, once it is known to belong to this ALTER on this table and the slot still holds every change after it.</summary>
    public async Task<MigrationCheckpoint> LoadAsync(MigrationDigest migration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(migration);
        MigrationCheckpoint checkpoint = ResumableCheckpoint.Require(await store.LoadAsync(cancellationToken), migration, original, names.Shadow, Cleanup);
        PostgresLsnPosition position = ResumableCheckpoint.Position(checkpoint, PostgresLsnPosition.Parse, Cleanup);

        await CheckSlotAsync(position, cancellationToken);
        return checkpoint;
    }

    /// <summary>
    /// The slot still gives back every change after <paramref name="position"/>: it is ours (pgoutput, this
    /// database), its WAL is not removed, and it confirms no more than the checkpoint records. osc tells the slot only
    /// positions a saved checkpoint already covers, so a slot confirmed beyond the checkpoint was advanced by
    /// something else, and the changes in between may be in neither the shadow nor the stream.
    /// </summary>
    private async Task CheckSlotAsync(PostgresLsnPosition position, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT s.plugin, s.database = current_database(), s.confirmed_flush_lsn, s.wal_status,
                   EXISTS (SELECT FROM pg_publication_tables p WHERE p.pubname = $2 AND p.schemaname = $3 AND p.tablename = $4)
            FROM pg_replication_slots s WHERE s.slot_name = $1
            """, connection);
        foreach (string value in new[] { stream.Slot, stream.Publication, original.Schema!, original.Name })
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            throw new OscException($"The replication slot {stream.Slot} of the interrupted migration is gone.", $"Remove the leftovers with {Cleanup} and start again.");
        }

        string plugin = reader.IsDBNull(0) ? "" : reader.GetString(0);
        if (plugin != "pgoutput" || reader.IsDBNull(1) || !reader.GetBoolean(1))
        {
            throw new OscException($"The replication slot {stream.Slot} is not the interrupted migration's (plugin {plugin}, or another database).",
                $"Remove the leftovers with {Cleanup} (it drops that slot) and start again.");
        }

        if (!reader.IsDBNull(3) && reader.GetString(3) == "lost")
        {
            throw new OscException(
                $"The server removed WAL that the replication slot {stream.Slot} still needed (wal_status lost, max_slot_wal_keep_size): changes made since the checkpoint cannot be recovered.",
                $"Remove the leftovers with {Cleanup} and start again; resume sooner, or allow the slot more WAL.");
        }

        if (reader.IsDBNull(2) || reader.GetFieldValue<NpgsqlLogSequenceNumber>(2) > position.Lsn)
        {
            string confirmed = reader.IsDBNull(2) ? "unknown" : reader.GetFieldValue<NpgsqlLogSequenceNumber>(2).ToString();
            throw new OscException(
                $"The replication slot {stream.Slot} was advanced to {confirmed}, past the checkpoint's {position}: something other than osc consumed its changes, and they may be missing from the shadow.",
                $"Remove the leftovers with {Cleanup} and start again; leave the slot to osc.");
        }

        if (!reader.GetBoolean(4))
        {
            throw new OscException($"The publication {stream.Publication} no longer includes {original}: its changes would not be streamed.",
                $"Remove the leftovers with {Cleanup} and start again.");
        }
    }
}
