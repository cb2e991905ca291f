using OnlineSchemaChange.Core.Connection;

namespace OnlineSchemaChange.MySql.Connection;

/// <summary>
/// Reads password= from the [client] (or [mysql], [mariadb-client]) group of ~/.my.cnf, as the mysql client does, so
/// DBAs can keep credentials where their other tools already find them.
/// </summary>
public sealed class MyCnfPasswordSource(string path) : IPasswordSource
{
    private static readonly string[] Groups = ["client", "mysql", "client-mariadb", "mariadb-client"];

    public static MyCnfPasswordSource ForCurrentUser() =>
        new(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".my.cnf"));

    public string Name => "~/.my.cnf";

    public string? Find(ConnectionTarget target)
    {
        if (target?.Engine != DatabaseEngine.MySql || !File.Exists(path))
        {
            return null;
        }

        string? group = null, password = null;
        foreach (string raw in File.ReadLines(path))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            if (line[0] == '[')
            {
                group = line.Trim('[', ']').Trim().ToLowerInvariant();
                continue;
            }

            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && group is not null && Groups.Contains(group) && line[..eq].Trim().Equals("password", StringComparison.OrdinalIgnoreCase))
            {
                password = line[(eq + 1)..].Trim().Trim('"', '\'');
            }
        }

        return password;
    }
}
