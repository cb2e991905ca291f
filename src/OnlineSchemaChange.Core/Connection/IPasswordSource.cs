namespace OnlineSchemaChange.Core.Connection;

/// <summary>One place a password may come from: an environment variable, an option file, a prompt.</summary>
public interface IPasswordSource
{
    /// <summary>A short name for messages: "MYSQL_PWD", "~/.pgpass".</summary>
    string Name { get; }

    string? Find(ConnectionTarget target);
}

/// <summary>Reads the password from an environment variable.</summary>
public sealed class EnvironmentPasswordSource(string variable) : IPasswordSource
{
    public string Name => variable;

    public string? Find(ConnectionTarget target)
    {
        string? value = Environment.GetEnvironmentVariable(variable);
        return string.IsNullOrEmpty(value) ? null : value;
    }
}

public static class PasswordResolver
{
    /// <summary>The target with its password filled in from the first source that has one; unchanged when none has.</summary>
    public static ConnectionTarget Resolve(ConnectionTarget target, IEnumerable<IPasswordSource> sources)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(sources);
        if (target.Password is not null)
        {
            return target;
        }

        foreach (IPasswordSource source in sources)
        {
            string? password = source.Find(target);
            if (password is not null)
            {
                return target with { Password = password };
            }
        }

        return target;
    }
}
