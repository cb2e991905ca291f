namespace OnlineSchemaChange.LocalServers;

/// <summary>Finds the Debian server binaries; a missing one is an error that points at tools/setup.</summary>
internal static class Binaries
{
    public static string Find(string name, params string[] directories)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        var candidates = directories.Concat(path.Split(':', StringSplitOptions.RemoveEmptyEntries)).Distinct().ToList();
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
