using System.Net.Sockets;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Connection;

/// <summary>
/// Tells a lost server connection (a restart, a failover, a network cut, osc's session killed) from the failures that
/// are bugs, so that the operator reads that the server went away and what to do, not a stack trace.
/// </summary>
public static class MySqlConnectionLoss
{
    private const int ErrorServerShutdown = 1053;
    private const int ErrorConnectionKilled = 1927;

    public static bool Is(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            bool lost = x switch
            {
                MySqlEndOfStreamException or EndOfStreamException or SocketException => true,
                MySqlException m => m.ErrorCode is MySqlErrorCode.UnableToConnectToHost or MySqlErrorCode.ServerShutdown
                    || (int)m.ErrorCode == ErrorConnectionKilled,
                MySqlServerException s => s.ErrorCode is ErrorServerShutdown or ErrorConnectionKilled,
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
                "The server restarted, failed over or ended osc's session (KILL, wait_timeout), or the network dropped. Once it answers again, run the " +
                "command again; where osc says it kept its work, with --resume.", e);
    }
}
