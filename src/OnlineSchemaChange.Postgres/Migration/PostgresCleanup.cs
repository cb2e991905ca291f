using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Plan;
using OnlineSchemaChange.Postgres.Replication;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// Removes every leftover of ours for one table after an interrupted run (kill -9, a lost connection): the
/// replication slot first (it holds WAL on the server), then the publication, the shadow and bookkeeping tables. The
/// original as it was before a finished swap (_osc_old) holds the old data, so it is reported and dropped only when
/// asked.
/// </summary>
public sealed class PostgresCleanup(ConnectionTarget target)
{
    public async Task<CleanupReport> RunAsync(TableName table, bool dropOldTable, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        string schema = table.Schema ?? await ScalarAsync<string>(connection, "SELECT current_schema()", null, cancellationToken);
        var qualified = new TableName(schema, table.Name);
        var names = new ShadowNames(table.Name, PostgresReplicationNames.MaxLength);
        var replication = new PostgresReplicationNames(connection.Database, qualified);
        var dropped = new List<string>(await PostgresReplicationSlot.DropAsync(PostgresConnections.BuildConnectionString(target), replication, cancellationToken));
        var kept = new List<string>();
        await ScalarAsync<string>(connection, "SELECT set_config('lock_timeout', '10s', false)", null, cancellationToken);
        foreach (string name in names.Created.Append(names.Old))
        {
            var candidate = new TableName(schema, name);
            if (!await ScalarAsync<bool>(connection, "SELECT to_regclass($1) IS NOT NULL", PostgresSql.Quote(candidate), cancellationToken))
            {
                continue;
            }

            if (name == names.Old && !dropOldTable)
            {
                kept.Add(candidate.ToString());
                continue;
            }

            await using var drop = new NpgsqlCommand($"DROP TABLE IF EXISTS {PostgresSql.Quote(candidate)}", connection);
            try
            {
                await drop.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DependentObjectsStillExist)
            {
                throw new OscException($"{candidate} cannot be dropped: {e.MessageText}.", "Drop or repoint what depends on it (a view, a foreign key), then run cleanup again.", e);
            }

            dropped.Add(candidate.ToString());
        }

        return new CleanupReport(dropped, kept);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, object? parameter, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        if (parameter is not null)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }

        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
