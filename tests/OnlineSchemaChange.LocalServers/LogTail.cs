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
            return $"Last lines of {path}:{Environment.NewLine}{LastLines(File.ReadAllText(path, Encoding.UTF8))}";
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

    public static string LastLines(string text) =>
        string.Join(Environment.NewLine, text.TrimEnd().Split('\n').TakeLast(Lines).Select(line => line.TrimEnd('\r')));
}
