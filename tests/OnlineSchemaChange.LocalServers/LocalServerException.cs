namespace OnlineSchemaChange.LocalServers;

/// <summary>A throwaway server could not be had: says what failed and, when there is one, ends with the server's log tail.</summary>
public sealed class LocalServerException : Exception
{
    public LocalServerException() { }

    public LocalServerException(string message) : base(message) { }

    public LocalServerException(string message, Exception inner) : base(message, inner) { }

    internal static LocalServerException WithLog(string message, string logPath) =>
        new($"{message}{Environment.NewLine}{LogTail.Describe(logPath)}");

    internal static LocalServerException MissingBinary(string name, IEnumerable<string> lookedIn) =>
        new($"'{name}' was not found (looked in {string.Join(", ", lookedIn)}). " +
            "Run tools/setup to install the MariaDB and PostgreSQL server binaries.");
}
