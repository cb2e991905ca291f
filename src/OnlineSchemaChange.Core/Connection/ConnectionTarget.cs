namespace OnlineSchemaChange.Core.Connection;

/// <summary>
/// Where to connect, from a URI (mysql://user@host:3306/db, postgres://user@host/db) or from gh-ost style flags.
/// The password is optional here: it normally comes from the environment or an option file, never needs the command line.
/// </summary>
public sealed record ConnectionTarget(DatabaseEngine Engine, string Host, int Port, string? User, string? Database)
{
    public string? Password { get; init; }

    /// <summary>Driver options given as URI query parameters (sslmode=require, ...), passed through.</summary>
    public IReadOnlyDictionary<string, string> Options { get; init; } = new Dictionary<string, string>();

    public static int DefaultPort(DatabaseEngine engine) => engine == DatabaseEngine.MySql ? 3306 : 5432;

    /// <summary>The target as it can be printed or logged: never the password.</summary>
    public string Redacted =>
        $"{(Engine == DatabaseEngine.MySql ? "mysql" : "postgres")}://{(User is null ? "" : Uri.EscapeDataString(User) + "@")}{HostForUri}:{Port}/{Database}";

    private string HostForUri => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host;

    public static bool LooksLikeUri(string text) => text is not null && text.Contains("://", StringComparison.Ordinal);

    public static ConnectionTarget ParseUri(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!Uri.TryCreate(text, UriKind.Absolute, out Uri? uri))
        {
            throw new OscException($"'{Redact(text)}' is not a valid connection URI.",
                "Write it as mysql://user@host:3306/database or postgres://user@host:5432/database.");
        }

        DatabaseEngine engine = uri.Scheme.ToLowerInvariant() switch
        {
            "mysql" or "mariadb" => DatabaseEngine.MySql,
            "postgres" or "postgresql" => DatabaseEngine.Postgres,
            _ => throw new OscException($"Unknown connection scheme '{uri.Scheme}://'.",
                "Use mysql:// (or mariadb://) for MySQL and MariaDB, postgres:// for PostgreSQL."),
        };

        string? user = null, password = null;
        if (uri.UserInfo.Length > 0)
        {
            int colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            user = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            password = colon < 0 ? null : Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
        }

        string database = Uri.UnescapeDataString(uri.AbsolutePath.Trim('/'));
        var options = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            string key = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
            options[key] = eq < 0 ? "true" : Uri.UnescapeDataString(pair[(eq + 1)..]);
        }

        string host = uri.Host.Trim('[', ']');
        return new ConnectionTarget(engine, host.Length == 0 ? "127.0.0.1" : host, uri.IsDefaultPort || uri.Port < 0 ? DefaultPort(engine) : uri.Port,
            user, database.Length == 0 ? null : database)
        {
            Password = password,
            Options = options,
        };
    }

    /// <summary>Hides a password in a URI-looking text before it goes into a message.</summary>
    public static string Redact(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int scheme = text.IndexOf("://", StringComparison.Ordinal);
        int at = text.LastIndexOf('@');
        if (scheme < 0 || at < scheme)
        {
            return text;
        }

        int colon = text.IndexOf(':', scheme + 3);
        return colon > 0 && colon < at ? text[..(colon + 1)] + "***" + text[at..] : text;
    }
}
