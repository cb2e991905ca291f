using System.CommandLine;
using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Migration;
using Spectre.Console;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>
/// `osc alter`: the online ALTER. Without --execute it is a dry run, as gh-ost's default: every check, the shadow
/// created with the real ALTER and dropped again, and what the migration would do.
/// </summary>
internal static class AlterCommand
{
    public static Command Create(OscConsole console)
    {
        var connection = new ConnectionOptions();
        var table = new Option<string>("--table", "-t") { Description = "The table to alter: name or schema.name", Required = true };
        var alter = new Option<string>("--alter", "-a") { Description = "The change: \"MODIFY k BIGINT\" or a full ALTER TABLE statement", Required = true };
        var execute = new Option<bool>("--execute") { Description = "Migrate for real (without it: a dry run that changes nothing)" };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON, for scripts" };
        var command = new Command("alter", """
            Change a table online: a shadow table with the new schema, a chunked throttled copy, replay of concurrent
            changes from the binlog, verification and an atomic swap. Without --execute: a dry run that checks
            everything, creates the shadow table with your ALTER, and drops it again.
            """);
        connection.AddTo(command);
        command.Options.Add(table);
        command.Options.Add(alter);
        command.Options.Add(execute);
        command.Options.Add(json);
        command.SetAction((result, cancellationToken) =>
        {
            bool asJson = result.GetValue(json);
            return CommandGuard.RunAsync(console, asJson, async () =>
            {
                TableName tableName = TableName.Parse(result.GetValue(table)!);
                ConnectionTarget target = connection.Resolve(result, tableName, console.PromptSecret);
                if (target.Engine != DatabaseEngine.MySql)
                {
                    throw new OscException("osc alter supports MySQL and MariaDB in this version; PostgreSQL support is being built.",
                        "Use `osc plan` to see how PostgreSQL would run the change and its non-blocking form.");
                }

                AlterRehearsal rehearsal = await new MySqlAlterRehearsal(target).RunAsync(tableName, result.GetValue(alter)!, cancellationToken);
                if (asJson)
                {
                    console.WriteJson(new
                    {
                        dryRun = true,
                        table = rehearsal.Facts.Table.ToString(),
                        serverVersion = rehearsal.Facts.ServerVersion,
                        alter = rehearsal.Alter,
                        estimatedRows = rehearsal.Facts.EstimatedRows,
                        totalBytes = rehearsal.Facts.TotalBytes,
                        key = new { name = rehearsal.Facts.KeyName, columns = rehearsal.Facts.Key, inShadow = rehearsal.KeyInShadow },
                        shadowTable = rehearsal.Facts.Names.Shadow,
                        oldTable = rehearsal.Facts.Names.Old,
                        columns = rehearsal.Mapping.Pairs.Select(p => new { source = p.Source, target = p.Target }),
                        droppedColumns = rehearsal.DroppedColumns,
                        addedColumns = rehearsal.AddedColumns,
                        shadowDefinition = rehearsal.ShadowDefinition,
                    });
                }
                else
                {
                    Render(console.Ansi, rehearsal);
                }

                if (result.GetValue(execute))
                {
                    throw new OscException("--execute is not available in this version yet: the dry run above passed, and nothing was changed.",
                        "Run `osc plan` for the native options meanwhile.");
                }

                return 0;
            }, cancellationToken);
        });
        return command;
    }

    private static void Render(IAnsiConsole console, AlterRehearsal r)
    {
        console.MarkupLine($"[bold]Dry run[/] of an online ALTER of [bold]{Markup.Escape(r.Facts.Table.ToString())}[/] on {Markup.Escape(r.Facts.ServerVersion)}: nothing was changed.");
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        grid.AddRow("ALTER", Markup.Escape(r.Alter));
        grid.AddRow("Table", Markup.Escape($"about {r.Facts.EstimatedRows:N0} rows, {r.Facts.TotalBytes / (1024.0 * 1024.0):0.0} MiB"));
        grid.AddRow("Rows matched by", Markup.Escape($"{r.Facts.KeyName} ({string.Join(", ", r.Facts.Key)})"));
        grid.AddRow("Checks", "binlog on, ROW, FULL; InnoDB; usable key; no triggers; no foreign keys; no leftovers: [green]passed[/]");
        grid.AddRow("Shadow table", Markup.Escape($"{r.Facts.Names.Shadow}: created with the ALTER, then dropped"));
        grid.AddRow("Columns copied", Markup.Escape(string.Join(", ", r.Mapping.Pairs.Select(p => p.Source == p.Target ? p.Source : $"{p.Source} -> {p.Target}"))));
        grid.AddRow("Columns dropped", Markup.Escape(r.DroppedColumns.Count == 0 ? "none" : string.Join(", ", r.DroppedColumns)));
        grid.AddRow("Columns added", Markup.Escape(r.AddedColumns.Count == 0 ? "none" : string.Join(", ", r.AddedColumns) + " (their defaults)"));
        grid.AddRow("After the swap", Markup.Escape($"the original is kept as {r.Facts.Names.Old}"));
        console.Write(grid);
    }
}
