using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Connection;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// Runs the steps of a non-blocking native form (<see cref="Plan.PostgresSafeVariant"/>) on the real table: a brief
/// step as <see cref="PostgresBriefStatement"/> does, a concurrent one (CREATE INDEX CONCURRENTLY, VALIDATE) outside
/// any transaction block, which CONCURRENTLY requires, with no timeout: its lock does not queue the application.
/// </summary>
public sealed class PostgresNativeStepRunner(ConnectionTarget target, TableName table) : INativeStepRunner
{
    private const string Fix = "--native off rebuilds the table online instead.";

    public async Task RunAsync(NativeStep nativeStep, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(nativeStep);
        if (nativeStep.Lock == NativeStepLock.Brief)
        {
            await PostgresBriefStatement.RunAsync(target, table, nativeStep.Sql, lockTimeout, null, e => e.SqlState == PostgresErrorCodes.QueryCanceled
                ? new OscException($"it ran past its brief lock's bound ({PostgresBriefStatement.WorkMillis} ms after the lock wait) and was rolled back: "
                                   + "PostgreSQL was scanning the table under the lock (a primary key over columns not yet NOT NULL, say).",
                    "Set such columns NOT NULL first (osc alter does that without blocking), or " + Fix, e)
                : new OscException(Describe(e), Fix, e), cancellationToken);
            return;
        }

        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        await PostgresBriefStatement.ExecuteAsync(connection, "SET lock_timeout = 0; SET statement_timeout = 0", cancellationToken);
        try
        {
            await PostgresBriefStatement.ExecuteAsync(connection, nativeStep.Sql, cancellationToken);
        }
        catch (PostgresException e)
        {
            throw new OscException(Describe(e), Fix, e);
        }
    }

    /// <summary>The server's message with its detail, which names the offending key or row.</summary>
    private static string Describe(PostgresException e) => $"{e.MessageText} (SQLSTATE {e.SqlState}){(e.Detail is { Length: > 0 } detail ? ": " + detail : ".")}";
}
