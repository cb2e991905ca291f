using System.Net.Sockets;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;

namespace OnlineSchemaChange.Postgres.Connection;

/// <summary>Opens connections for a target and turns driver failures into messages an operator can act on.</summary>
public static class PostgresConnections
{
    public static string BuildConnectionString(ConnectionTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = target.Host,
            Port = target.Port,
            Username = target.User ?? Environment.UserName,
            Database = target.Database ?? target.User ?? "postgres",
            Timeout = 10,
            CommandTimeout = 120,
            Pooling = false,
            ApplicationName = "osc",

            // The server's DETAIL names the offending key or row, what an operator needs to fix the data (MySQL's
            // errors carry the same); a URI option can turn it off.
            IncludeErrorDetail = true,
        };
        if (target.Password is not null)
        {
            builder.Password = target.Password;
        }

        foreach ((string key, string value) in target.Options)
        {
            builder[key] = value;
        }

        return builder.ConnectionString;
    }

    public static async Task<NpgsqlConnection> OpenAsync(ConnectionTarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var connection = new NpgsqlConnection(BuildConnectionString(target));
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            await connection.DisposeAsync();
            throw Describe(e, target);
        }
    }

    public static OscException Describe(Exception e, ConnectionTarget target)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(target);
        string where = $"{target.Host}:{target.Port}";
        return e switch
        {
            PostgresException { SqlState: PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification } pe =>
                new OscException($"Authentication failed for user '{target.User}' at {where}: {pe.MessageText}",
                    "Check the user and password (PGPASSWORD, OSC_PASSWORD or ~/.pgpass) and pg_hba.conf.", e),
            PostgresException { SqlState: PostgresErrorCodes.InvalidCatalogName } =>
                new OscException($"Database '{target.Database}' does not exist on {where}.", "Check the database name in the connection URI or --database.", e),
            PostgresException pe => new OscException($"PostgreSQL error {pe.SqlState} at {where}: {pe.MessageText}", null, e),
            NpgsqlException { InnerException: SocketException or TimeoutException or IOException } =>
                new OscException($"Cannot connect to PostgreSQL at {where}: {e.InnerException!.Message}",
                    "Check the host and port, and that the server is running and reachable.", e),
            _ when e.Message.Contains("password", StringComparison.OrdinalIgnoreCase) =>
                new OscException($"PostgreSQL at {where} asks for a password and none was given.",
                    "Set PGPASSWORD or OSC_PASSWORD, add it to ~/.pgpass, or run from a terminal to be prompted.", e),
            _ => new OscException($"Cannot connect to PostgreSQL at {where}: {e.Message}", null, e),
        };
    }
}
