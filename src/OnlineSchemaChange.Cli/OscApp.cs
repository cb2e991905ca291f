using System.CommandLine;
using OnlineSchemaChange.Cli.Commands;
using OnlineSchemaChange.Cli.Output;

namespace OnlineSchemaChange.Cli;

/// <summary>The `osc` command line, runnable in-process with any writers (the tests drive it this way).</summary>
internal static class OscApp
{
    public static RootCommand Build(OscConsole console)
    {
        var root = new RootCommand("osc: online schema changes for MySQL, MariaDB and PostgreSQL, without locking the table.");
        root.Subcommands.Add(PlanCommand.Create(console));
        root.Subcommands.Add(AlterCommand.Create(console));
        root.Subcommands.Add(CleanupCommand.Create(console));
        root.Subcommands.Add(ControlCommand.Create(console));
        root.Subcommands.Add(BinlogCommand.Create());
        return root;
    }

    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, bool interactive, CancellationToken cancellationToken)
    {
        var console = new OscConsole(stdout, stderr, interactive);
        ParseResult result = Build(console).Parse(args);
        // Signals are handled by Program (Ctrl-C and SIGTERM alike, with no deadline: cleanup must finish), so the
        // library's own handling, which would end the process two seconds after a signal, is switched off.
        return result.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr, ProcessTerminationTimeout = null }, cancellationToken);
    }
}
