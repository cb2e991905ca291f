namespace OnlineSchemaChange.Core.Migration;

/// <summary>A server session an interrupted run left working on the shadow: its id and the start of its statement.</summary>
public sealed record LeftoverSession(long Id, string Statement);

/// <summary>What an engine does to find, end and watch the sessions an interrupted run left behind.</summary>
/// <param name="FindAsync">The sessions other than ours whose statement names the shadow.</param>
/// <param name="EndAsync">Ends one (a session that ended by itself meanwhile is no error).</param>
/// <param name="AnyLeftAsync">Whether any of these ids is still listed (an ended session stays until it has rolled back).</param>
/// <param name="ListName">Where the operator sees them (SHOW PROCESSLIST, pg_stat_activity).</param>
public sealed record LeftoverSessionControl(
    Func<CancellationToken, Task<IReadOnlyList<LeftoverSession>>> FindAsync,
    Func<LeftoverSession, CancellationToken, Task> EndAsync,
    Func<IReadOnlyList<long>, CancellationToken, Task<bool>> AnyLeftAsync,
    string ListName);

/// <summary>
/// Ends the statements a killed run left working on the shadow, and waits until they are gone. A server notices a lost
/// client only when it next answers it, so a copy chunk or replay batch that was waiting on a lock when its process
/// died waits on, then commits rows it read before the kill, in the middle of a resumed run (or holds the table a
/// cleanup must drop). The caller holds the run lock, so no live run of ours works there.
/// </summary>
public static class LeftoverSessions
{
    public static readonly TimeSpan DefaultRollbackWait = TimeSpan.FromMinutes(5);

    /// <summary>Ends them all; returns a note per session ended, for the run's or the cleanup's notes.</summary>
    public static async Task<IReadOnlyList<string>> EndAsync(LeftoverSessionControl control, string shadow, CancellationToken cancellationToken,
        TimeSpan? rollbackWait = null)
    {
        ArgumentNullException.ThrowIfNull(control);
        IReadOnlyList<LeftoverSession> found = await control.FindAsync(cancellationToken);
        if (found.Count == 0)
        {
            return [];
        }

        foreach (LeftoverSession session in found)
        {
            await control.EndAsync(session, cancellationToken);
        }

        long[] ids = [.. found.Select(s => s.Id)];
        DateTime deadline = DateTime.UtcNow + (rollbackWait ?? DefaultRollbackWait);
        while (await control.AnyLeftAsync(ids, cancellationToken))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new OscException($"Sessions {string.Join(", ", ids)}, left working on {shadow} by an interrupted run, were ended but are still there (rolling back).",
                    $"Wait until they leave {control.ListName}, then run again.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }

        return [.. found.Select(s => $"Ended session {s.Id}, which an interrupted run had left working on the shadow ({s.Statement}...).")];
    }

    /// <summary>
    /// The refusal while a live run holds a table's run lock: who holds it, what it is doing, and, when its osc process
    /// may be gone while the server finishes its statement, how to end that session.
    /// </summary>
    /// <param name="table">The table the run is on.</param>
    /// <param name="theLock">The lock, as a phrase ("the lock osc-run.db.t").</param>
    /// <param name="holder">"session 12 holds its lock ... (running ... for 3 s)", or null when the holder is not found.</param>
    /// <param name="consequence">Why the caller must not go on meanwhile, a sentence, or null.</param>
    /// <param name="endHolder">The statement that ends the holder, or null when it is not known.</param>
    public static OscException RunInProgress(string table, string theLock, string? holder, string? consequence, string? endHolder) =>
        new($"An osc run on {table} is in progress{(holder is null ? $" (it holds {theLock})" : ": " + holder)}." + (consequence is null ? "" : " " + consequence),
            "Let it finish, or stop it (Ctrl-C keeps its work for --resume)."
            + (endHolder is null ? "" : $" If its osc process is gone, the server is still finishing its last statement: wait for it, or end it ({endHolder}), then run again."));

    /// <summary>The refusal of a native ALTER while a table of an unfinished run of ours (<paramref name="leftover"/>) is there.</summary>
    public static OscException UnfinishedRun(string schema, string leftover, string table) =>
        new($"{schema}.{leftover} exists: a migration of {table} is running or did not finish.",
            $"Let it finish, resume it with --resume, or remove it with `osc cleanup <connection> --table {table}`; then run this ALTER.");
}
