using System.Net.Sockets;
using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;

namespace OnlineSchemaChange.MySql.Connection;

/// <summary>Opens connections for a target and turns driver failures into messages an operator can act on.</summary>
public static class MySqlConnections
{
    public static string BuildConnectionString(ConnectionTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var builder = new MySqlConnectionStringBuilder
        {
            Server = target.Host,
            Port = (uint)target.Port,
            UserID = target.User ?? Environment.UserName,
            Password = target.Password ?? "",
            ConnectionTimeout = 10,
            DefaultCommandTimeout = 120,
            Pooling = false,
            SslMode = MySqlSslMode.Preferred,
            AllowPublicKeyRetrieval = true,
            AllowUserVariables = true,
        };
        if (target.Database is not null)
        {
            builder.Database = target.Database;
        }

        foreach ((string key, string value) in target.Options)
        {
            builder[key] = value;
        }

        return builder.ConnectionString;
    }

    public static async Task<MySqlConnection> OpenAsync(ConnectionTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var connection = new MySqlConnection(BuildConnectionString(target));
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch (MySqlException e)
        {
            await connection.DisposeAsync();
            throw Describe(e, target);
        }
    }

    /// <summary>Names the problem and the fix for the failures operators actually meet.</summary>
    public static OscException Describe(MySqlException e, ConnectionTarget target)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(target);
        return e.ErrorCode switch
        {
            MySqlErrorCode.AccessDenied => new OscException(
                $"Access denied for user '{target.User}' at {target.Host}:{target.Port}: {e.Message}",
                "Check the user and password (MYSQL_PWD, OSC_PASSWORD or ~/.my.cnf).", e),
            MySqlErrorCode.UnknownDatabase => new OscException(
                $"Database '{target.Database}' does not exist on {target.Host}:{target.Port}.",
                "Check the database name in the connection URI or --database.", e),
            MySqlErrorCode.UnableToConnectToHost => new OscException(
                $"Cannot connect to MySQL/MariaDB at {target.Host}:{target.Port}: {Innermost(e).Message}",
                "Check the host and port, and that the server is running and reachable.", e),
            _ => new OscException($"MySQL/MariaDB error {(int)e.ErrorCode} at {target.Host}:{target.Port}: {e.Message}", null, e),
        };
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null && e is not SocketException)
        {
            e = e.InnerException;
        }

        return e;
    }
}
