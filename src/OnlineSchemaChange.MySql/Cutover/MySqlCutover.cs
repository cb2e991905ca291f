using System.Diagnostics;
using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Replication;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Cutover;

/// <summary>
/// Swaps the shadow in for the original atomically, with gh-ost's sentry algorithm (MariaDB refuses RENAME under
/// LOCK TABLES). Connection A creates a sentry table under the name the original will take, locks the original and
/// the sentry for writing, and drains the replay to the binlog position it sees under the lock. Connection B issues
/// RENAME TABLE original TO old, shadow TO original, which waits on A's lock. Once B is seen waiting, A drops the
/// sentry and unlocks: the waiting RENAME is served before the writes queued behind it. If A dies or gives up first,
/// the sentry is still there, B's RENAME fails on it, and the original stays in place. Writes wait only between
/// LOCK TABLES and UNLOCK TABLES; an attempt that cannot lock within the timeout is retried with backoff.
/// With <paramref name="foreignKeys"/> (the original's own foreign keys), once the drain under the lock has made the
/// shadow equal to the original: B adds the keys to the shadow under their rebuilt names (it needs no lock on the
/// original), then A, which holds the original's lock, drops them from the original, so that the old table's frozen
/// rows never refuse a parent's delete once writes resume. Both are metadata-only ALTERs (INPLACE,
/// foreign_key_checks=0). A failed attempt gives the original its keys back before unlocking and drops the shadow's.
/// An attempt also gives up, and is retried, while <paramref name="pendingPreparedXa"/> names a prepared XA transaction
/// whose rows of the original the replay holds: its XA COMMIT would come after the swap, into the old table.
/// </summary>
public sealed class MySqlCutover(string connectionString, TableName original, ShadowNames names,
    Func<ReplicationPosition, CancellationToken, Task> drainTo, CutoverOptions options, Migration.MySqlCutoverForeignKeys? foreignKeys = null,
    Func<string?>? pendingPreparedXa = null)
{
    public const string SentryColumn = "osc_sentry";

    private OscException? _keysNotRestored;

    private TableName Shadow => original with { Name = names.Shadow };

    private TableName Old => original with { Name = names.Old };

    public async Task<CutoverResult> RunAsync(CancellationToken cancellationToken)
    {
        string? lastFailure = null;
        for (int attempt = 1; attempt <= options.Attempts; attempt++)
        {
            try
            {
                (TimeSpan blocked, TimeSpan lockWait, IReadOnlyList<CutoverStep> steps) = await AttemptAsync(cancellationToken);
                return new CutoverResult(blocked, attempt) { LockWait = lockWait, Steps = steps };
            }
            catch (LockAttemptException e)
            {
                if (_keysNotRestored is not null)
                {
                    throw _keysNotRestored;
                }

                lastFailure = e.Message;
                if (attempt < options.Attempts)
                {
                    await Task.Delay(LockRetry.Backoff(attempt), cancellationToken);
                }
            }
        }

        throw new OscException($"The cut-over did not succeed in {options.Attempts} attempts; last: {lastFailure}",
            "The original table is in place and serving. Look for long transactions on the table (information_schema.INNODB_TRX) and prepared XA transactions (XA RECOVER), then retry.");
    }

    /// <summary>One attempt: how long writes were held, how long the lock request waited (writes queue behind it too), and where the hold went.</summary>
    private async Task<(TimeSpan Blocked, TimeSpan LockWait, IReadOnlyList<CutoverStep> Steps)> AttemptAsync(CancellationToken cancellationToken)
    {
        await using var locker = new MySqlConnection(connectionString);
        await locker.OpenAsync(cancellationToken);
        await using var renamer = new MySqlConnection(connectionString);
        await renamer.OpenAsync(cancellationToken);
        int lockSeconds = Math.Max(1, (int)Math.Ceiling(options.LockTimeout.TotalSeconds));
        string lockName = $"osc.{original.Schema}.{original.Name}";
        if (lockName.Length > 64)
        {
            lockName = lockName[..64];
        }

        if (await ScalarAsync(locker, "SELECT GET_LOCK(@n, 0)", cancellationToken, ("@n", lockName)) is not 1L and not 1)
        {
            throw new OscException($"Another cut-over of {original} is in progress (the named lock {lockName} is held).", "Wait for it, or stop the other run.");
        }

        if (foreignKeys is not null)
        {
            // Left by a failed attempt that could not drop them; the ALTER below would collide with them.
            await Migration.MySqlForeignKeys.DropAllAsync(renamer, Shadow, cancellationToken);
        }

        // Prepared before the lock: every round trip under it is time the application's writes wait. And before the
        // sentry, so that nothing between its creation and the block that drops it can fail.
        long renamerId = Convert.ToInt64(await ScalarAsync(renamer, "SELECT CONNECTION_ID()", cancellationToken), CultureInfo.InvariantCulture);
        if (foreignKeys is null)
        {
            await ExecuteAsync(renamer, "SET SESSION lock_wait_timeout = 60", cancellationToken);
        }

        // The index the replay needed and the ALTER did not ask for (ShadowTable.EnsureReplayKeyAsync), looked up before
        // the lock: its columns, to add it back if the attempt fails after dropping it.
        string? replayKeyColumns = await ScalarAsync(locker,
            "SELECT GROUP_CONCAT(CONCAT('`', REPLACE(COLUMN_NAME, '`', '``'), '`') ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS " +
            "WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t AND INDEX_NAME = @i", cancellationToken,
            ("@s", original.Schema!), ("@t", names.Shadow), ("@i", names.ReplayKey)) as string;
        bool replayKeyDropped = false;
        // Unlocked, so that under the lock only what was committed since is left to drain: the application waits for
        // no backlog the replay built up meanwhile (during verification, say).
        await CatchUpBeforeLock.RunAsync(async ct => await MySqlBinlogPosition.CurrentAsync(locker, ct), drainTo, options.DrainTimeout, cancellationToken);
        await ExecuteAsync(locker, $"SET SESSION lock_wait_timeout = {lockSeconds}", cancellationToken);
        await DropSentryAsync(locker, cancellationToken);
        await ExecuteAsync(locker, $"CREATE TABLE {MySqlSql.Quote(Old)} ({SentryColumn} INT) ENGINE=InnoDB", cancellationToken);
        Task<int>? rename = null;
        bool swapped = false, keysAdded = false, originalKeysDropped = false;
        try
        {
            long requested = Stopwatch.GetTimestamp();
            try
            {
                await ExecuteAsync(locker, $"LOCK TABLES {MySqlSql.Quote(original)} WRITE, {MySqlSql.Quote(Old)} WRITE", cancellationToken);
            }
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.LockWaitTimeout or MySqlErrorCode.LockDeadlock)
            {
                throw new LockAttemptException($"could not lock {original} within {lockSeconds} s: {e.Message}");
            }

            var held = new CutoverTimeline();
            TimeSpan lockWait = Stopwatch.GetElapsedTime(requested, held.Start);
            ReplicationPosition position = await MySqlBinlogPosition.CurrentAsync(locker, cancellationToken);
            held.Mark("binlog position read");
            using (var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                drain.CancelAfter(options.DrainTimeout);
                try
                {
                    await drainTo(position, drain.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new LockAttemptException($"the replay did not reach {position} within {options.DrainTimeout.TotalSeconds:0.#} s");
                }
            }

            held.Mark("drain: shadow caught up");

            // Drained to a position read under the lock, the replay has read every XA PREPARE and XA COMMIT before it,
            // and no new XA transaction can change the original while the lock is held. One still pending would
            // commit after the RENAME, into the old table (a prepared transaction keeps the table's metadata lock, so
            // LOCK TABLES usually waits instead; not after a server restart, which leaves recovered XA transactions
            // prepared without it).
            if (pendingPreparedXa?.Invoke() is { } pending)
            {
                throw new LockAttemptException($"prepared XA transactions on {original} are pending (their XA COMMIT would land in the old table): {pending}");
            }

            if (foreignKeys is not null)
            {
                // The shadow now equals the original, and neither can change until the UNLOCK: the keys hold.
                await ExecuteAsync(renamer, $"SET SESSION foreign_key_checks = 0, lock_wait_timeout = {lockSeconds}", cancellationToken);
                await ExecuteAsync(locker, "SET SESSION foreign_key_checks = 0", cancellationToken);
                try
                {
                    keysAdded = true;
                    await ExecuteAsync(renamer, foreignKeys.AddToShadow, cancellationToken);
                    await ExecuteAsync(locker, foreignKeys.DropFromOriginal, cancellationToken);
                    originalKeysDropped = true;
                }
                catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.LockWaitTimeout or MySqlErrorCode.LockDeadlock)
                {
                    throw new LockAttemptException($"could not move the foreign keys to {Shadow} within {lockSeconds} s: {e.Message}");
                }

                await ExecuteAsync(renamer, "SET SESSION foreign_key_checks = 1, lock_wait_timeout = 60", cancellationToken);
                held.Mark("foreign keys moved");
            }

            if (replayKeyColumns is not null)
            {
                // Drained and locked: nothing writes to the shadow until the RENAME. Dropping a secondary index is a
                // catalog change. The RENAME that follows waits with the 60 s the renamer was given above.
                try
                {
                    await ExecuteAsync(renamer, $"SET SESSION lock_wait_timeout = {lockSeconds}; ALTER TABLE {MySqlSql.Quote(Shadow)} DROP INDEX {MySqlSql.Quote(names.ReplayKey)}; " +
                                                "SET SESSION lock_wait_timeout = 60", cancellationToken);
                    replayKeyDropped = true;
                }
                catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.LockWaitTimeout or MySqlErrorCode.LockDeadlock)
                {
                    throw new LockAttemptException($"could not drop the index {names.ReplayKey} from {Shadow} within {lockSeconds} s: {e.Message}");
                }

                held.Mark("replay's index dropped");
            }

            rename = ExecuteAsync(renamer,
                $"RENAME TABLE {MySqlSql.Quote(original)} TO {MySqlSql.Quote(Old)}, {MySqlSql.Quote(Shadow)} TO {MySqlSql.Quote(original)}", CancellationToken.None);
            await WaitUntilWaitingAsync(locker, renamerId, rename, cancellationToken);
            held.Mark("rename queued");

            // The RENAME is queued behind our lock: without the sentry it can proceed, and it goes first.
            await ExecuteAsync(locker, $"DROP TABLE {MySqlSql.Quote(Old)}", cancellationToken);
            held.Mark("sentry dropped");
            await ExecuteAsync(locker, "UNLOCK TABLES", cancellationToken);
            held.Mark("unlocked");
            TimeSpan blocked = held.Elapsed;
            try
            {
                await rename;
            }
            catch (MySqlException e)
            {
                throw new LockAttemptException($"the RENAME failed after the unlock: {e.Message}");
            }

            swapped = true;
            return (blocked, lockWait, held.Steps);
        }
        finally
        {
            if (!swapped)
            {
                // Still under the lock, so the original has not changed since its keys held: add them back unchecked.
                OscException? notRestored = originalKeysDropped ? await RestoreOriginalKeysAsync(locker, foreignKeys!.RestoreOriginal) : null;

                // Unlock first: a waiting RENAME then fails on the sentry, which is only dropped after it has.
                await ExecuteAsync(locker, "UNLOCK TABLES", CancellationToken.None);
                if (rename is not null)
                {
                    try
                    {
                        await rename;
                    }
                    catch (MySqlException)
                    {
                        // Expected: the sentry made it fail, which is what keeps the original in place.
                    }
                }

                await DropSentryAsync(locker, CancellationToken.None);
                if (keysAdded)
                {
                    // The shadow lags again from here on: its keys would refuse parent deletes the original allows.
                    await Migration.MySqlForeignKeys.DropAllAsync(locker, Shadow, CancellationToken.None);
                }

                // Not retried: the attempts stop with this, and a resume or `osc cleanup` restores the keys.
                _keysNotRestored ??= notRestored;
                if (replayKeyDropped)
                {
                    // The replay goes on and needs it again; an online build, the lock being gone. If it fails, the replay
                    // is slower, not wrong, and a resumed run adds it back.
                    try
                    {
                        await ExecuteAsync(locker, $"ALTER TABLE {MySqlSql.Quote(Shadow)} ADD KEY {MySqlSql.Quote(names.ReplayKey)} ({replayKeyColumns}), ALGORITHM=INPLACE, LOCK=NONE",
                            CancellationToken.None);
                    }
                    catch (MySqlException)
                    {
                    }
                }
            }

            await ExecuteAsync(locker, "DO RELEASE_LOCK(@n)", CancellationToken.None, ("@n", lockName));
        }
    }

    /// <summary>Gives the original its keys back; a failure is returned, to stop the attempts once the lock and sentry are gone.</summary>
    private async Task<OscException?> RestoreOriginalKeysAsync(MySqlConnection locker, string restore)
    {
        try
        {
            await ExecuteAsync(locker, restore, CancellationToken.None);
            return null;
        }
        catch (MySqlException e)
        {
            return new OscException($"The swap failed after dropping {original}'s foreign keys, and adding them back failed: {e.Message}",
                $"Run `osc cleanup` or --resume (either adds them back, from the bookkeeping table), or: SET SESSION foreign_key_checks = 0; {restore}", e);
        }
    }

    /// <summary>Waits until B's RENAME is blocked on our lock, as the processlist shows, or fails the attempt.</summary>
    private static async Task WaitUntilWaitingAsync(MySqlConnection locker, long renamerId, Task rename, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(2))
        {
            if (rename.IsCompleted)
            {
                string why = rename.Exception?.InnerException?.Message ?? "it finished while the table was locked";
                throw new LockAttemptException($"the RENAME did not wait for the lock: {why}");
            }

            object? state = await ScalarAsync(locker, "SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = @id AND INFO LIKE 'RENAME%'",
                cancellationToken, ("@id", renamerId));
            if (state is string s && s.Contains("metadata lock", StringComparison.OrdinalIgnoreCase))
            {
                return;
            }

            await Task.Delay(5, cancellationToken);
        }

        throw new LockAttemptException("the RENAME was not seen waiting on the table lock within 2 s");
    }

    /// <summary>Drops a table under the old name only when it is our sentry, never the real old table.</summary>
    private async Task DropSentryAsync(MySqlConnection connection, CancellationToken cancellationToken)
    {
        object? columns = await ScalarAsync(connection,
            "SELECT GROUP_CONCAT(COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t", cancellationToken,
            ("@s", Old.Schema!), ("@t", Old.Name));
        if (columns is string names && names == SentryColumn)
        {
            await ExecuteAsync(connection, $"DROP TABLE IF EXISTS {MySqlSql.Quote(Old)}", cancellationToken);
        }
        else if (columns is string)
        {
            throw new OscException($"{Old} exists and is not our sentry: a finished migration's old table is still there.",
                $"Drop or rename {Old} first (osc cleanup --drop-old-table drops it).");
        }
    }

    private static async Task<int> ExecuteAsync(MySqlConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        await using var command = new MySqlCommand(sql, connection) { CommandTimeout = 120 };
        foreach ((string name, object value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<object?> ScalarAsync(MySqlConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        await using var command = new MySqlCommand(sql, connection);
        foreach ((string name, object value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        object? value2 = await command.ExecuteScalarAsync(cancellationToken);
        return value2 is DBNull ? null : value2;
    }
}
