namespace OnlineSchemaChange.LocalServers;

/// <summary>Finds the Debian server binaries; a missing one is an error that points at tools/setup.</summary>
internal static class Binaries
{
    /// <summary>Looks in <paramref name="directories"/>, then in PATH.</summary>
    public static string Find(string name, params string[] directories)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return FindIn(name, [.. directories.Concat(path.Split(':', StringSplitOptions.RemoveEmptyEntries)).Distinct()]);
    }

    /// <summary>Looks only in <paramref name="candidates"/>: for a version-specific directory, where PATH could find another version.</summary>
    public static string FindIn(string name, params string[] candidates)
    {
        foreach (var directory in candidates)
        {
            var file = Path.Combine(directory, name);
            if (File.Exists(file))
            {
                return file;
            }
        }

        throw LocalServerException.MissingBinary(name, candidates);
    }
}
