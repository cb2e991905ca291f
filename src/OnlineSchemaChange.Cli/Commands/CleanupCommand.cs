using System.CommandLine;
using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Migration;
using OnlineSchemaChange.Postgres.Migration;
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
        var command = new Command("cleanup", "Remove what an interrupted run left for a table: shadow, bookkeeping, sentry and plan tables, its control socket at the default path; on PostgreSQL also its replication slot, publication and a materialized view's unfinished rebuild, with what is left to do after a swap.");
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
                    : await PostgresCleanup.RunAsync(target, tableName, result.GetValue(dropOld), cancellationToken);
                string socket = Control.ControlSocket.DefaultPath(target, tableName);
                if (await Control.ControlSocket.RemoveIfDeadAsync(socket, cancellationToken))
                {
                    report = report with { Dropped = [.. report.Dropped, socket] };
                }

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
}
