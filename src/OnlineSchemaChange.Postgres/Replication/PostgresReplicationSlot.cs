using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.PgOutput;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Replication;

/// <summary>
/// The publication (this table only) and the permanent pgoutput slot a migration streams from. Both are created
/// before the copy: the publication first, because the slot's decoder looks publications up as of the WAL it reads,
/// then the slot, whose consistent point is where replay starts; every commit after it is streamed, every commit
/// before it is visible to the copy that starts afterwards. The slot is permanent so a dropped replication connection
/// resumes from it without losing a change, and so it must always be dropped: a forgotten slot keeps WAL forever.
/// </summary>
public sealed class PostgresReplicationSlot
{
    private PostgresReplicationSlot(PostgresReplicationNames names, PostgresLsnPosition consistentPoint)
    {
        Names = names;
        ConsistentPoint = consistentPoint;
    }

    public PostgresReplicationNames Names { get; }

    /// <summary>Where the slot's stream starts: every transaction committed after it is replayed.</summary>
    public PostgresLsnPosition ConsistentPoint { get; }

    public static async Task<PostgresReplicationSlot> CreateAsync(string connectionString, PostgresReplicationNames names, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(names);
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(cancellationToken);
            await using var create = new NpgsqlCommand(
                $"CREATE PUBLICATION {PostgresSql.Quote(names.Publication)} FOR TABLE {PostgresSql.Quote(names.Table)}", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        try
        {
            await using var replication = new LogicalReplicationConnection(connectionString);
            await replication.Open(cancellationToken);
            // Creating a slot waits for the transactions running at that moment to end: a long one holds us here.
            PgOutputReplicationSlot slot = await replication.CreatePgOutputReplicationSlot(
                names.Slot, temporarySlot: false, slotSnapshotInitMode: LogicalSlotSnapshotInitMode.NoExport, cancellationToken: cancellationToken);
            return new PostgresReplicationSlot(names, new PostgresLsnPosition(slot.ConsistentPoint));
        }
        catch
        {
            using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await DropAsync(connectionString, names, cleanup.Token);
            throw;
        }
    }

    /// <summary>
    /// Drops the slot (ending the walsender that still holds it, ours after a kill -9) and the publication, whichever
    /// exist, and says which did.
    /// </summary>
    public static async Task<IReadOnlyList<string>> DropAsync(string connectionString, PostgresReplicationNames names, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(names);
        var dropped = new List<string>();
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        // A walsender leaves a moment after it is told to, or after its client closed the connection (ours, just
        // before a failed run's cleanup): until then the slot is active and cannot be dropped, so wait for it.
        for (int attempt = 1; ; attempt++)
        {
            await using var drop = new NpgsqlCommand("""
                SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = @slot AND active_pid IS NOT NULL;
                SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = @slot AND NOT active;
                SELECT string_agg(coalesce(active_pid::text, ''), '') FROM pg_replication_slots WHERE slot_name = @slot
                """, connection);
            drop.Parameters.AddWithValue("slot", names.Slot);
            string? holder;
            try
            {
                await using NpgsqlDataReader reader = await drop.ExecuteReaderAsync(cancellationToken);
                await reader.NextResultAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                if (reader.GetInt64(0) > 0)
                {
                    dropped.Add("replication slot " + names.Slot);
                    break;
                }

                await reader.NextResultAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                holder = reader.IsDBNull(0) ? null : reader.GetString(0);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse)
            {
                // Taken again between the check and the drop.
                holder = "";
            }

            if (holder is null)
            {
                break;
            }

            if (attempt >= SlotDropAttempts)
            {
                throw new OscException(
                    $"The replication slot {names.Slot} stays in use{(holder.Length > 0 ? $" by the session with pid {holder}" : "")} and could not be dropped; it holds WAL on the server until it is.",
                    $"End that session (SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{names.Slot}'), then run `osc cleanup`.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }

        await using var exists = new NpgsqlCommand("SELECT count(*) FROM pg_publication WHERE pubname = @name", connection);
        exists.Parameters.AddWithValue("name", names.Publication);
        if ((long)(await exists.ExecuteScalarAsync(cancellationToken))! > 0)
        {
            await using var dropPublication = new NpgsqlCommand($"DROP PUBLICATION IF EXISTS {PostgresSql.Quote(names.Publication)}", connection);
            await dropPublication.ExecuteNonQueryAsync(cancellationToken);
            dropped.Add("publication " + names.Publication);
        }

        return dropped;
    }

    /// <summary>How many times a drop tries the slot, 100 ms apart, while a walsender still holds it.</summary>
    private const int SlotDropAttempts = 100;

    /// <summary>Whether a slot or publication of ours for this table exists: an earlier run's leftover.</summary>
    public static async Task<string?> FindLeftoverAsync(NpgsqlConnection connection, PostgresReplicationNames names, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(names);
        await using var find = new NpgsqlCommand("""
            SELECT 'replication slot ' || slot_name FROM pg_replication_slots WHERE slot_name = @slot
            UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname = @publication
            LIMIT 1
            """, connection);
        find.Parameters.AddWithValue("slot", names.Slot);
        find.Parameters.AddWithValue("publication", names.Publication);
        return await find.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>The refusal for a leftover found by <see cref="FindLeftoverAsync"/>.</summary>
    public static OscException Leftover(string what, PostgresReplicationNames names)
    {
        ArgumentNullException.ThrowIfNull(names);
        return new OscException($"The {what} of an earlier migration of {names.Table} still exists.",
            $"Run `osc cleanup <connection> --table {names.Table}` to remove it (a slot holds WAL on the server until dropped), then run again.");
    }
}
