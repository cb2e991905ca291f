using System.CommandLine;
using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Plan;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>`osc plan`: what this server would do with the ALTER, and what to do instead when that is dangerous.</summary>
internal static class PlanCommand
{
    public static Command Create(OscConsole console)
    {
        var connection = new ConnectionOptions();
        var table = SharedOptions.Table(SharedOptions.TableToAlter);
        var alter = SharedOptions.Alter("The change: \"ADD COLUMN c INT\" or a full ALTER TABLE / CREATE INDEX statement");
        var json = SharedOptions.Json("Print the plan as JSON, for scripts");
        var command = new Command("plan", """
            Ask the server how it would run an ALTER, before anything runs: instant, online or blocking, which lock,
            whether it rewrites or scans the table, and the safest way to do it. The ALTER runs only on an empty copy
            of the table, which is always removed.
            Exit codes: 0 safe to run natively (or in the safe form shown), 2 needs an online rebuild (osc alter),
            3 needs expand-contract (the application sees the change), 4 no online way for this table (run it natively
            when writes may wait), 1 error.
            """);
        connection.AddTo(command);
        command.Options.Add(table);
        command.Options.Add(alter);
        command.Options.Add(json);
        command.SetAction((result, cancellationToken) =>
        {
            bool asJson = result.GetValue(json);
            return CommandGuard.RunAsync(console, asJson, async () =>
            {
                TableName tableName = TableName.Parse(result.GetValue(table)!);
                ConnectionTarget target = connection.Resolve(result, tableName, console.PromptSecret);
                IAlterPlanner planner = target.Engine == DatabaseEngine.MySql ? new MySqlAlterPlanner(target) : new PostgresAlterPlanner(target);
                AlterPlan plan = await planner.PlanAsync(tableName, result.GetValue(alter)!, cancellationToken);
                if (asJson)
                {
                    console.WriteJson(PlanJson.From(plan, target.Redacted));
                }
                else
                {
                    PlanRenderer.Render(console.Ansi, plan, target.Redacted);
                }

                return plan.ExitCode;
            }, cancellationToken);
        });
        return command;
    }
}
