using System.Net.Sockets;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Connection;

/// <summary>The MySQL/MariaDB exceptions that mean a lost server connection (<see cref="ConnectionLoss"/>).</summary>
public static class MySqlConnectionLoss
{
    private const int ErrorServerShutdown = 1053;
    private const int ErrorConnectionKilled = 1927;

    /// <summary>How an operator ends one of osc's sessions on this engine, as the explanation names it.</summary>
    public const string EndedBy = "KILL, wait_timeout";

    public static bool Is(Exception e) => ConnectionLoss.AnyCause(e, x => x switch
    {
        MySqlEndOfStreamException or EndOfStreamException or SocketException => true,
        MySqlException m => m.ErrorCode is MySqlErrorCode.UnableToConnectToHost or MySqlErrorCode.ServerShutdown || (int)m.ErrorCode == ErrorConnectionKilled,
        MySqlServerException s => s.ErrorCode is ErrorServerShutdown or ErrorConnectionKilled,
        _ => false,
    });

    /// <summary>The failure as the operator should read it: a lost connection explained, anything else as it is.</summary>
    public static Exception Explain(Exception e, string? server = null) =>
        e is OscException || !Is(e) ? e : ConnectionLoss.Explain(e, server, EndedBy);
}
