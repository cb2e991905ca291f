namespace OnlineSchemaChange.MySql.Protocol;

public enum TlsMode
{
    /// <summary>Plain TCP.</summary>
    Disabled,
    /// <summary>TLS when the server offers it.</summary>
    Preferred,
    /// <summary>Fail unless the server offers TLS.</summary>
    Required,
}

/// <summary>Where and as whom to connect.</summary>
public sealed record MySqlEndpoint(string Host, int Port, string User, string Password)
{
    public string? Database { get; init; }
    public TlsMode Tls { get; init; } = TlsMode.Preferred;
    /// <summary>Accept any server certificate (self-signed test servers); off by default.</summary>
    public bool TrustServerCertificate { get; init; }
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Parses mysql://user[:password]@host[:port][/database][?tls=disabled|preferred|required&amp;trust-server-certificate=true].
    /// A password absent from the URI is taken from MYSQL_PWD.</summary>
    public static MySqlEndpoint Parse(string uri)
    {
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || (parsed.Scheme != "mysql" && parsed.Scheme != "mariadb"))
        {
            throw new FormatException($"Expected a connection URI like mysql://user@host:3306/db, got '{uri}'.");
        }

        var userInfo = parsed.UserInfo.Split(':', 2);
        var user = Uri.UnescapeDataString(userInfo[0]);
        var password = userInfo.Length > 1 ? Uri.UnescapeDataString(userInfo[1]) : Environment.GetEnvironmentVariable("MYSQL_PWD") ?? "";
        var database = parsed.AbsolutePath.Trim('/');
        var endpoint = new MySqlEndpoint(parsed.Host, parsed.IsDefaultPort || parsed.Port <= 0 ? 3306 : parsed.Port, user.Length == 0 ? "root" : user, password)
        {
            Database = database.Length == 0 ? null : Uri.UnescapeDataString(database),
        };
        foreach (var pair in parsed.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var value = kv.Length > 1 ? Uri.UnescapeDataString(kv[1]) : "true";
            endpoint = kv[0].ToLowerInvariant() switch
            {
                "tls" or "ssl" or "sslmode" => endpoint with { Tls = ParseTls(value) },
                "trust-server-certificate" => endpoint with { TrustServerCertificate = bool.Parse(value) },
                _ => throw new FormatException($"Unknown connection option '{kv[0]}'."),
            };
        }

        return endpoint;
    }

    private static TlsMode ParseTls(string value) => value.ToLowerInvariant() switch
    {
        "disabled" or "none" or "false" => TlsMode.Disabled,
        "preferred" => TlsMode.Preferred,
        "required" or "true" => TlsMode.Required,
        _ => throw new FormatException($"Unknown TLS mode '{value}'."),
    };
}
