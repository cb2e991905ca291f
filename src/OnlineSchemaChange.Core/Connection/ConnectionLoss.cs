namespace OnlineSchemaChange.Core.Connection;

/// <summary>
/// What the engines share in telling a lost server connection (a restart, a failover, a network cut, osc's session
/// ended) from a failure that is a bug: each says which of its exceptions mean a lost connection, this walks the
/// causes and words the explanation.
/// </summary>
public static class ConnectionLoss
{
    /// <summary>Whether <paramref name="e"/> or any exception inside it is a lost connection by <paramref name="lost"/>.</summary>
    public static bool AnyCause(Exception e, Func<Exception, bool> lost)
    {
        ArgumentNullException.ThrowIfNull(lost);
        for (Exception? cause = e; cause is not null; cause = cause.InnerException)
        {
            if (lost(cause))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The lost connection as the operator should read it; <paramref name="endedBy"/> names how an operator ends a session on the engine.</summary>
    public static OscException Explain(Exception e, string? server, string endedBy)
    {
        ArgumentNullException.ThrowIfNull(e);
        return new OscException($"Lost the connection to the server{(server is null ? "" : " at " + server)}: {e.Message.TrimEnd('.')}.",
            $"The server restarted, failed over or ended osc's session ({endedBy}), or the network dropped. Once it answers again, run the command again; " +
            "where osc says it kept its work, with --resume.", e);
    }
}
