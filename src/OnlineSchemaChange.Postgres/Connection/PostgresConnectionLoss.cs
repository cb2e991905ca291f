using System.Net.Sockets;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;

namespace OnlineSchemaChange.Postgres.Connection;

/// <summary>The PostgreSQL exceptions that mean a lost server connection (<see cref="ConnectionLoss"/>).</summary>
public static class PostgresConnectionLoss
{
    /// <summary>How an operator ends one of osc's sessions on this engine, as the explanation names it.</summary>
    public const string EndedBy = "pg_terminate_backend";

    public static bool Is(Exception e) => ConnectionLoss.AnyCause(e, x => x switch
    {
        // Terminated backend, server shutting down or starting up, and the connection exception class.
        PostgresException p => p.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow
                               || p.SqlState.StartsWith("08", StringComparison.Ordinal),
        NpgsqlException or IOException or SocketException or EndOfStreamException => true,
        _ => false,
    });

    /// <summary>The failure as the operator should read it: a lost connection explained, anything else as it is.</summary>
    public static Exception Explain(Exception e, string? server = null) =>
        e is OscException || !Is(e) ? e : ConnectionLoss.Explain(e, server, EndedBy);
}
