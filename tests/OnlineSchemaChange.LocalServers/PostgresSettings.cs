using System.Globalization;

namespace OnlineSchemaChange.LocalServers;

/// <summary>The postgres settings every server of ours gets, local or in a container, as -c arguments.</summary>
internal static class PostgresSettings
{
    public static List<string> Arguments(PostgresOptions options, IReadOnlyDictionary<string, string> placement)
    {
        var settings = new Dictionary<string, string>
        {
            ["wal_level"] = "logical",
            ["max_replication_slots"] = "10",
            ["max_wal_senders"] = "10",
            ["max_connections"] = "200",
            ["shared_buffers"] = "64MB",
            ["hot_standby"] = "on",
            ["hot_standby_feedback"] = "on",
            ["fsync"] = options.Durable ? "on" : "off",
            ["synchronous_commit"] = options.Durable ? "on" : "off",
            ["full_page_writes"] = options.Durable ? "on" : "off",
        };
        foreach (var (name, value) in placement.Concat(options.Settings))
        {
            settings[name] = value;
        }

        var arguments = new List<string>();
        foreach (var (name, value) in settings)
        {
            arguments.Add("-c");
            arguments.Add(string.Create(CultureInfo.InvariantCulture, $"{name}={value}"));
        }

        return arguments;
    }
}
