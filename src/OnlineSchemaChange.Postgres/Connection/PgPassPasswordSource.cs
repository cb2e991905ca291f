using OnlineSchemaChange.Core.Connection;

namespace OnlineSchemaChange.Postgres.Connection;

/// <summary>Looks the password up in ~/.pgpass (or $PGPASSFILE): host:port:database:user:password, '*' matches anything.</summary>
public sealed class PgPassPasswordSource(string path) : IPasswordSource
{
    public static PgPassPasswordSource ForCurrentUser() => new(Environment.GetEnvironmentVariable("PGPASSFILE")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".pgpass"));

    public string Name => "~/.pgpass";

    public string? Find(ConnectionTarget target)
    {
        if (target?.Engine != DatabaseEngine.Postgres || !File.Exists(path))
        {
            return null;
        }

        string[] wanted =
        [
            target.Host, target.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            target.Database ?? target.User ?? "postgres", target.User ?? Environment.UserName,
        ];
        foreach (string line in File.ReadLines(path))
        {
            if (line.StartsWith('#'))
            {
                continue;
            }

            List<string> fields = SplitEscaped(line);
            if (fields.Count == 5 && Enumerable.Range(0, 4).All(i => fields[i] == "*" || fields[i] == wanted[i]
                                                                       || (i == 0 && fields[0] == "localhost" && wanted[0] is "127.0.0.1" or "::1")))
            {
                return fields[4];
            }
        }

        return null;
    }

    // Fields are ':'-separated; '\:' and '\\' are escapes.
    private static List<string> SplitEscaped(string line)
    {
        var fields = new List<string>();
        var current = new System.Text.StringBuilder();
        for (int i = 0; i < line.Length; i++)
        {
            if (line[i] == '\\' && i + 1 < line.Length)
            {
                current.Append(line[++i]);
            }
            else if (line[i] == ':' && fields.Count < 4)
            {
                fields.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(line[i]);
            }
        }

        fields.Add(current.ToString());
        return fields;
    }
}
