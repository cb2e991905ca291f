using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.Postgres.Connection;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>
/// Runs a command's body so that every way it can end is an exit code a script can rely on: known failures print
/// their message and fix (1), Ctrl-C or SIGTERM exits 130 once cleanup in the body's finally blocks has run
/// (a migration that kept its work for --resume says so), a lost server connection says so (1), and anything
/// unexpected still ends in one readable line (1) with the details on stderr.
/// </summary>
internal static class CommandGuard
{
    public const int Cancelled = 130;

    public static async Task<int> RunAsync(OscConsole console, bool asJson, Func<Task<int>> body, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(body);
        try
        {
            return await body();
        }
        catch (Core.Migration.MigrationKeptException e)
        {
            // Stopped with its work kept for --resume: still a failure, or an interruption when the operator asked.
            console.WriteError(e, asJson);
            return e.Cancelled ? Cancelled : Core.Plan.PlanExitCodes.Error;
        }
        catch (OscException e)
        {
            console.WriteError(e, asJson);
            return Core.Plan.PlanExitCodes.Error;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            console.WriteError(new OscException("Cancelled; everything this command created was removed."), asJson);
            return Cancelled;
        }
        catch (Exception e) when (MySqlConnectionLoss.Is(e) || PostgresConnectionLoss.Is(e))
        {
            // Not a bug: the server went away (the engines say where, when it happens mid-migration).
            console.WriteError(ConnectionLoss.Explain(e, null, MySqlConnectionLoss.Is(e) ? MySqlConnectionLoss.EndedBy : PostgresConnectionLoss.EndedBy), asJson);
            return Core.Plan.PlanExitCodes.Error;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            console.WriteError(new OscException($"Unexpected failure: {e.Message}", $"This is a bug; please report it with these details:{Environment.NewLine}{e}"), asJson);
            return Core.Plan.PlanExitCodes.Error;
        }
    }
}
