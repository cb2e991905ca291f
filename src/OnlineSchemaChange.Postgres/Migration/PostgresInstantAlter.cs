using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Cutover;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// One try of a catalog-only ALTER on the real table, in a transaction of its own: lock_timeout bounds the wait for
/// the ACCESS EXCLUSIVE lock (and so how long the application queues behind it), statement_timeout bounds the rest,
/// and a table rewritten after all (a new relfilenode) is rolled back rather than committed. A timed-out wait names
/// the sessions that held it up.
/// </summary>
public sealed class PostgresInstantAlter(ConnectionTarget target, TableName table, string statement) : IInstantAlterAttempt
{
    public Task RunAsync(TimeSpan lockTimeout, CancellationToken cancellationToken) => PostgresBriefStatement.RunAsync(target, table, statement, lockTimeout,
        (before, after) =>
        {
            if (after != before)
            {
                throw new InstantAlterRefusedException($"The ALTER rewrote {table}, which it did not do on the planner's empty copy; it was rolled back.");
            }
        },
        e => e.SqlState == PostgresErrorCodes.QueryCanceled
            ? new InstantAlterRefusedException($"The ALTER of {table} took longer than a catalog change does ({PostgresBriefStatement.WorkMillis} ms past its lock wait) and was cancelled: "
                                               + "the server did more on the table than on the planner's empty copy.", e)

            // Rolled back with the transaction: something on the real table the copy lacks (a dependent view, say) stands in the way.
            : new InstantAlterRefusedException($"The server refused the ALTER on {table} itself: {e.MessageText} (SQLSTATE {e.SqlState}).", e),
        cancellationToken);

    /// <summary>
    /// Refuses while a table of an unfinished run of ours is there: the ALTER would change the original under a live
    /// migration (which then stops) or under one kept for --resume (which then cannot resume).
    /// </summary>
    public static async Task RefuseUnfinishedRunAsync(ConnectionTarget target, TableName table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var names = new ShadowNames(table.Name, 63);
        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        await using var command = new NpgsqlCommand(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            + "WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass) AND c.relname = ANY($2) LIMIT 1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = PostgresSql.Quote(table) });
        command.Parameters.Add(new NpgsqlParameter { Value = names.Created.ToArray() });
        if (await command.ExecuteScalarAsync(cancellationToken) is string ours)
        {
            throw new OscException($"{ours} exists: a migration of {table.Name} is running or did not finish.",
                $"Let it finish, resume it with --resume, or remove it with `osc cleanup <connection> --table {table}`; then run this ALTER.");
        }
    }
}
