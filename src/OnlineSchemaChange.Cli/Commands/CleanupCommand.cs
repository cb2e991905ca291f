using System.CommandLine;
using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Migration;
using Npgsql;
using OnlineSchemaChange.Postgres.Connection;
using OnlineSchemaChange.Postgres.Migration;
using OnlineSchemaChange.Postgres.Replication;
using Spectre.Console;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>`osc cleanup`: remove every leftover of ours for a table, after an interrupted migration.</summary>
internal static class CleanupCommand
{
    public static Command Create(OscConsole console)
    {
        var connection = new ConnectionOptions();
        var table = SharedOptions.Table("The table whose leftovers to remove");
        var dropOld = SharedOptions.DropOldTable("Also drop the original kept after a finished swap (<table>_osc_old)");
        var json = SharedOptions.Json("Print what was removed as JSON");
        var command = new Command("cleanup", "Remove what an interrupted run left for a table: shadow, bookkeeping, sentry and plan tables; on PostgreSQL also its replication slot, publication and a materialized view's unfinished rebuild, with what is left to do after a swap.");
        connection.AddTo(command);
        command.Options.Add(table);
        command.Options.Add(dropOld);
        command.Options.Add(json);
        command.SetAction((result, cancellationToken) =>
        {
            bool asJson = result.GetValue(json);
            return CommandGuard.RunAsync(console, asJson, async () =>
            {
                TableName tableName = TableName.Parse(result.GetValue(table)!);
                ConnectionTarget target = connection.Resolve(result, tableName, console.PromptSecret);
                CleanupReport report = target.Engine == DatabaseEngine.MySql
                    ? await new MySqlCleanup(target).RunAsync(tableName, result.GetValue(dropOld), cancellationToken)
                    : await CleanupPostgresAsync(target, tableName, result.GetValue(dropOld), cancellationToken);
                if (asJson)
                {
                    console.WriteJson(report);
                }
                else
                {
                    console.Ansi.WriteLine(report.Dropped.Count == 0 ? "Nothing to remove." : "Dropped: " + string.Join(", ", report.Dropped));
                    foreach (string kept in report.Kept)
                    {
                        console.Ansi.WriteLine($"Kept {kept}: the original from before a finished swap; drop it with --drop-old-table once you no longer need it.");
                    }

                    foreach (string note in report.Notes)
                    {
                        console.Ansi.WriteLine($"Note: {note}");
                    }
                }

                return 0;
            }, cancellationToken);
        });
        return command;
    }

    /// <summary>The replication slot first (it holds WAL on the server until dropped), then the publication, then our tables.</summary>
    private static async Task<CleanupReport> CleanupPostgresAsync(ConnectionTarget target, TableName table, bool dropOld, CancellationToken cancellationToken)
    {
        await using NpgsqlConnection connection = await PostgresConnections.OpenAsync(target, cancellationToken);
        string schema = table.Schema ?? (string)(await new NpgsqlCommand("SELECT current_schema()", connection).ExecuteScalarAsync(cancellationToken))!;
        var original = new TableName(schema, table.Name);
        var stream = new PostgresReplicationNames(connection.Database, original);
        await PostgresLeftoverSessions.HoldRunLockAsync(connection, stream, "Cleaning up would remove the slot and shadow it is using.", cancellationToken);

        // A killed run's statement can still be waiting on a lock in the shadow, and would hold up its DROP.
        var shadow = original with { Name = new ShadowNames(table.Name, PostgresInspector.MaxIdentifierLength).Shadow };
        IReadOnlyList<string> ended = await PostgresLeftoverSessions.EndAsync(connection, shadow, cancellationToken);
        IReadOnlyList<string> dropped = await PostgresReplicationSlot.DropAsync(PostgresConnections.BuildConnectionString(target), stream, cancellationToken);
        PostgresCleanupReport tables = await new PostgresCleanup(connection).RunAsync(table, dropOld, cancellationToken);
        return new CleanupReport([.. dropped, .. tables.Dropped], tables.Kept) { Notes = [.. ended, .. tables.Notes] };
    }
}
