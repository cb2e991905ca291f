using System.CommandLine;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.Postgres.Connection;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>
/// How every command names its server: a URI (mysql://user@host:3306/db) or gh-ost style flags. Passwords come from
/// OSC_PASSWORD, MYSQL_PWD or PGPASSWORD, ~/.my.cnf or ~/.pgpass, or a prompt (--ask-pass); a password in the URI
/// works but shows in the process list.
/// </summary>
internal sealed class ConnectionOptions
{
    public Argument<string?> Uri { get; } = new("connection")
    {
        Description = "mysql://user@host:3306/db, mariadb://..., or postgres://user@host:5432/db (or use --host/--port/--user/--database/--engine)",
        Arity = ArgumentArity.ZeroOrOne,
    };

    public Option<string?> Engine { get; } = new("--engine") { Description = "mysql (also MariaDB) or postgres; implied by a URI" };

    public Option<string?> Host { get; } = new("--host") { Description = "Server host (default 127.0.0.1)" };

    public Option<int?> Port { get; } = new("--port") { Description = "Server port (default 3306 or 5432)" };

    public Option<string?> User { get; } = new("--user", "-u") { Description = "User name (default: the OS user)" };

    public Option<string?> Database { get; } = new("--database", "-d") { Description = "Database (MySQL) or database name (PostgreSQL)" };

    public Option<bool> AskPass { get; } = new("--ask-pass") { Description = "Prompt for the password" };

    public void AddTo(Command command)
    {
        command.Arguments.Add(Uri);
        foreach (Option option in new Option[] { Engine, Host, Port, User, Database, AskPass })
        {
            command.Options.Add(option);
        }
    }

    public ConnectionTarget Resolve(ParseResult result, TableName? table, Func<string, string?> prompt)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(prompt);
        string? uri = result.GetValue(Uri);
        ConnectionTarget target;
        if (uri is not null)
        {
            if (!ConnectionTarget.LooksLikeUri(uri))
            {
                throw new OscException($"'{uri}' is not a connection URI.", "Write mysql://user@host:3306/db or postgres://user@host:5432/db, or use --host and --engine.");
            }

            target = ConnectionTarget.ParseUri(uri);
        }
        else
        {
            string engine = result.GetValue(Engine) ?? throw new OscException(
                "No server given.", "Pass a URI such as mysql://user@127.0.0.1:3306/db, or --engine mysql|postgres with --host and --port.");
            DatabaseEngine parsed = engine.ToLowerInvariant() switch
            {
                "mysql" or "mariadb" => DatabaseEngine.MySql,
                "postgres" or "postgresql" or "pg" => DatabaseEngine.Postgres,
                _ => throw new OscException($"Unknown engine '{engine}'.", "Use --engine mysql (MySQL and MariaDB) or --engine postgres."),
            };
            target = new ConnectionTarget(parsed, "127.0.0.1", ConnectionTarget.DefaultPort(parsed), null, null);
        }

        target = target with
        {
            Host = result.GetValue(Host) ?? target.Host,
            Port = result.GetValue(Port) ?? target.Port,
            User = result.GetValue(User) ?? target.User ?? DefaultUser(target.Engine),
            Database = result.GetValue(Database) ?? target.Database ?? table?.Schema,
        };

        if (result.GetValue(AskPass))
        {
            return target with { Password = prompt($"Password for {target.User}@{target.Host}:{target.Port}: ") };
        }

        return PasswordResolver.Resolve(target, PasswordSources(target.Engine));
    }

    /// <summary>Where a password not given in the URI is looked for, in order, for every command.</summary>
    public static IPasswordSource[] PasswordSources(DatabaseEngine engine) => engine == DatabaseEngine.MySql
        ? [new EnvironmentPasswordSource("OSC_PASSWORD"), new EnvironmentPasswordSource("MYSQL_PWD"), MyCnfPasswordSource.ForCurrentUser()]
        : [new EnvironmentPasswordSource("OSC_PASSWORD"), new EnvironmentPasswordSource("PGPASSWORD"), PgPassPasswordSource.ForCurrentUser()];

    private static string DefaultUser(DatabaseEngine engine) =>
        (engine == DatabaseEngine.Postgres ? Environment.GetEnvironmentVariable("PGUSER") : Environment.GetEnvironmentVariable("USER"))
        ?? Environment.UserName;
}
