using System.CommandLine;
using System.Net.Sockets;
using System.Text;
using OnlineSchemaChange.Cli.Control;
using OnlineSchemaChange.Cli.Output;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>
/// `osc control`: sends one command to a running migration's control socket and prints the answer, for hosts without
/// a netcat that speaks Unix sockets. Exit code 0 for an "ok" answer, 1 for an "error" or no run listening.
/// </summary>
internal static class ControlCommand
{
    public static Command Create(OscConsole console)
    {
        var line = new Argument<string>("command") { Description = "status, throttle, no-throttle, workers=N, chunk-time-millis=N, max-lag-millis=N, max-load=..., critical-load=..., postpone-cut-over, unpostpone, abort, help" };
        var connection = new ConnectionOptions();
        var table = new Option<string?>("--table", "-t") { Description = "The table being altered: finds the run's socket at its default path" };
        var socket = new Option<string?>("--socket") { Description = "The run's --control-socket path (instead of a connection and --table)" };
        var command = new Command("control", """
            Send a command to a running `osc alter --execute` through its control socket and print the answer:
            osc control status mysql://db1:3306/shop --table orders, or osc control throttle --socket /tmp/osc....sock.
            """);
        command.Arguments.Add(line);
        connection.AddTo(command);
        command.Options.Add(table);
        command.Options.Add(socket);
        command.SetAction((result, cancellationToken) => CommandGuard.RunAsync(console, false, async () =>
        {
            string path = result.GetValue(socket) ?? DefaultPath(result, connection, table, console);
            string answer = await SendAsync(path, result.GetValue(line)!, cancellationToken);
            console.WriteText(answer);
            return answer.StartsWith("ok", StringComparison.Ordinal) ? 0 : Core.Plan.PlanExitCodes.Error;
        }, cancellationToken));
        return command;
    }

    private static string DefaultPath(ParseResult result, ConnectionOptions connection, Option<string?> table, OscConsole console)
    {
        string name = result.GetValue(table) ?? throw new OscException("No run named.", "Give --socket with the run's socket path, or the connection and --table of the table it alters.");
        TableName tableName = TableName.Parse(name);
        return ControlSocket.DefaultPath(connection.Resolve(result, tableName, console.PromptSecret), tableName);
    }

    private static async Task<string> SendAsync(string path, string line, CancellationToken cancellationToken)
    {
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await client.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
        }
        catch (SocketException e)
        {
            throw new OscException($"No run answers on {path}: {e.Message}.",
                "Check that the migration is still running (with --execute) and the path it printed at its start, or give --socket.");
        }

        await using var stream = new NetworkStream(client);
        await stream.WriteAsync(Encoding.UTF8.GetBytes(line.Trim() + "\n"), cancellationToken);
        client.Shutdown(SocketShutdown.Send);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return (await reader.ReadToEndAsync(cancellationToken)).TrimEnd('\n');
    }
}
