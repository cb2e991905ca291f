using OnlineSchemaChange.Cli;

return await OscApp.RunAsync(args, Console.Out, Console.Error, interactive: !Console.IsOutputRedirected && !Console.IsInputRedirected, CancellationToken.None);
