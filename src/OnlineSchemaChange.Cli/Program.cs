using System.Runtime.InteropServices;
using OnlineSchemaChange.Cli;

// The first Ctrl-C or SIGTERM asks the running command to stop cleanly: locks released, connections closed, work
// kept for --resume or removed, exit code 130. A second signal is left to its default and ends the process at once.
using var stop = new CancellationTokenSource();
void Stop(PosixSignalContext context)
{
    if (!stop.IsCancellationRequested)
    {
        context.Cancel = true;
        stop.Cancel();
    }
}

using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
return await OscApp.RunAsync(args, Console.Out, Console.Error, interactive: !Console.IsOutputRedirected && !Console.IsInputRedirected, stop.Token);
