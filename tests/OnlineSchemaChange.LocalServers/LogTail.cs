using System.Text;

namespace OnlineSchemaChange.LocalServers;

/// <summary>The last lines of a server's log: what a failed start must show, since the directory is deleted right after.</summary>
internal static class LogTail
{
    private const int Lines = 40;

    public static string Describe(string path)
    {
        try
        {
            if (!File.Exists(path))
            {
                return $"(no log at {path})";
            }

            // Server logs of a throwaway instance are small; reading it whole is simpler than seeking.
            var lines = File.ReadAllLines(path, Encoding.UTF8);
            var tail = lines.Skip(Math.Max(0, lines.Length - Lines));
            return $"Last lines of {path}:{Environment.NewLine}{string.Join(Environment.NewLine, tail)}";
        }
        catch (IOException e)
        {
            return $"(could not read {path}: {e.Message})";
        }
        catch (UnauthorizedAccessException e)
        {
            return $"(could not read {path}: {e.Message})";
        }
    }
}
