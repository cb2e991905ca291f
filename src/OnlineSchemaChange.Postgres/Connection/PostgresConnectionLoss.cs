using System.Net.Sockets;
using Npgsql;
using OnlineSchemaChange.Core;

namespace OnlineSchemaChange.Postgres.Connection;

/// <summary>
/// Tells a lost server connection (a restart, a failover, a network cut, osc's backend terminated) from the failures
/// that are bugs, so that the operator reads that the server went away and what to do, not a stack trace.
/// </summary>
public static class PostgresConnectionLoss
{
    public static bool Is(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            bool lost = x switch
            {
                // Terminated backend, server shutting down or starting up, and the connection exception class.
                PostgresException p => p.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow
                    || p.SqlState.StartsWith("08", StringComparison.Ordinal),
                NpgsqlException or IOException or SocketException or EndOfStreamException => true,
                _ => false,
            };
            if (lost)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The failure as the operator should read it: a lost connection explained, anything else as it is.</summary>
    public static Exception Explain(Exception e, string? server = null)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e is OscException || !Is(e)
            ? e
            : new OscException($"Lost the connection to the server{(server is null ? "" : " at " + server)}: {e.Message.TrimEnd('.')}.",
                "The server restarted, failed over or ended osc's backend (pg_terminate_backend), or the network dropped. Once it answers again, run " +
                "the command again; where osc says it kept its work, with --resume.", e);
    }
}
