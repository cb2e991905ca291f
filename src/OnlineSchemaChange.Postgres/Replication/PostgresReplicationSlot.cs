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

    /// <param name="waiting">
    /// Told, every <see cref="WaitReportInterval"/> while the slot waits for transactions open before it to end, which
    /// ones they are: a session left idle in a transaction would otherwise hold the run here without a word.
    /// </param>
    public static async Task<PostgresReplicationSlot> CreateAsync(string connectionString, PostgresReplicationNames names, CancellationToken cancellationToken,
        Action<string>? waiting = null)
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
            using var created = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            Task watch = waiting is null ? Task.CompletedTask : WatchWaitAsync(connectionString, waiting, created.Token);
            PgOutputReplicationSlot slot;
            try
            {
                slot = await replication.CreatePgOutputReplicationSlot(
                    names.Slot, temporarySlot: false, slotSnapshotInitMode: LogicalSlotSnapshotInitMode.NoExport, cancellationToken: cancellationToken);
            }
            finally
            {
                await created.CancelAsync();
                await watch;
            }

            return new PostgresReplicationSlot(names, new PostgresLsnPosition(slot.ConsistentPoint));
        }
        catch
        {
            using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await DropAsync(connectionString, names, cleanup.Token);
            throw;
        }
    }

    /// <summary>How often a slot creation that waits says for whom.</summary>
    public static readonly TimeSpan WaitReportInterval = TimeSpan.FromSeconds(2);

    /// <summary>Until cancelled, every interval: the transactions with an id (those a new slot waits for), oldest first.</summary>
    private static async Task WatchWaitAsync(string connectionString, Action<string> waiting, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(WaitReportInterval, cancellationToken);
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(cancellationToken);
                await using var command = new NpgsqlCommand(
                    """
                    SELECT string_agg(format('pid %s (%s, %s, in a transaction for %s s): %s', pid, usename, state,
                                             round(extract(epoch FROM now() - xact_start)::numeric, 1), left(query, 200)), '; ' ORDER BY xact_start)
                    FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND datname IS NOT NULL
                    """, connection);
                if (await command.ExecuteScalarAsync(cancellationToken) is string open)
                {
                    waiting($"the replication slot waits for the transactions open before it to end: {open}");
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or NpgsqlException)
        {
            // Created (or given up): the watch was only a courtesy.
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
        var catalog = new PostgresCatalog(connection);
        for (int attempt = 1; ; attempt++)
        {
            await ReleaseAsync(connection, names.Slot, "run `osc cleanup`", cancellationToken);
            try
            {
                if (await catalog.ScalarAsync<long>(
                        "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", cancellationToken, names.Slot) > 0)
                {
                    dropped.Add("replication slot " + names.Slot);
                    break;
                }

                if (await catalog.ScalarAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", cancellationToken, names.Slot) == 0)
                {
                    break;
                }
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse)
            {
                // Taken again between the release and the drop: release it again.
            }

            if (attempt >= SlotDropAttempts)
            {
                throw new OscException($"The replication slot {names.Slot} is taken again each time it is released, and could not be dropped; it holds WAL on the server until it is.",
                    $"Stop whatever streams from it (pg_replication_slots.active_pid), then run `osc cleanup`.");
            }
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

    /// <summary>How many times a release ends the walsender holding the slot, 100 ms apart, before it gives up.</summary>
    private const int SlotReleaseAttempts = 100;

    /// <summary>How many times a drop releases the slot again when something takes it back in between.</summary>
    private const int SlotDropAttempts = 20;

    /// <summary>
    /// Ends the walsender that holds the slot, if any, and waits until the slot is free: a walsender leaves a moment
    /// after it is told to, and after its client closed the connection (ours, just before a failed run's cleanup; a
    /// killed run's, whose walsender notices only when it next writes). The callers hold the run lock, so no live run
    /// of ours is using the slot.
    /// </summary>
    /// <param name="then">What the operator runs once the session is ended, for the error.</param>
    public static async Task ReleaseAsync(NpgsqlConnection connection, string slot, string then, CancellationToken cancellationToken)
    {
        var catalog = new PostgresCatalog(connection);
        for (int attempt = 1; ; attempt++)
        {
            if (!await catalog.ScalarAsync<bool>(
                    "SELECT coalesce(bool_or(pg_terminate_backend(active_pid)), false) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                    cancellationToken, slot))
            {
                return;
            }

            if (attempt >= SlotReleaseAttempts)
            {
                throw new OscException($"The replication slot {slot} stays in use by another session after being ended {attempt} times; it holds WAL on the server until it is dropped.",
                    $"End that session (SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{slot}'), then {then}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }
    }

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
