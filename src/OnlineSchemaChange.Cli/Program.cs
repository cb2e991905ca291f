using System.CommandLine;
var root = new RootCommand("osc") { OnlineSchemaChange.Cli.Commands.BinlogCommand.Create() };
return await root.Parse(args).InvokeAsync();
