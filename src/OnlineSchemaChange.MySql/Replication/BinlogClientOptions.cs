using System.Globalization;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>Where replication starts.</summary>
public abstract record BinlogStart
{
    /// <summary>The server's current end of binlog (SHOW MASTER STATUS).</summary>
    public static BinlogStart Current { get; } = new CurrentPosition();

    public static BinlogStart Parse(string fileColonPosition)
    {
        var colon = fileColonPosition.LastIndexOf(':');
        return colon > 0 && uint.TryParse(fileColonPosition[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var position)
            ? new FilePosition(fileColonPosition[..colon], position)
            : throw new FormatException($"Expected FILE:POSITION, got '{fileColonPosition}'.");
    }

    /// <summary>A GTID set: MySQL's uuid:interval form, or MariaDB's domain-server-sequence list.</summary>
    public static BinlogStart FromGtid(string gtid) =>
        gtid.Contains(':', StringComparison.Ordinal) ? new MySqlGtid(MySqlGtidSet.Parse(gtid)) : new MariaDbGtid(gtid.Trim());

    public sealed record CurrentPosition : BinlogStart;
    public sealed record FilePosition(string File, uint Position) : BinlogStart;
    public sealed record MySqlGtid(MySqlGtidSet Executed) : BinlogStart;
    public sealed record MariaDbGtid(string Position) : BinlogStart;
}

public sealed record BinlogClientOptions(MySqlEndpoint Endpoint)
{
    /// <summary>What osc's binlog readers report as their host (SHOW SLAVE HOSTS): never a real host's name, so replica
    /// discovery tells them from replicas.</summary>
    public const string OscReportHost = "osc binlog stream";

    /// <summary>Our replica server id: must differ from every other binlog reader's of the server.</summary>
    public uint ServerId { get; init; } = 0x0C5C0001;
    /// <summary>The host this reader reports when it registers (SHOW SLAVE HOSTS).</summary>
    public string ReportHost { get; init; } = OscReportHost;
    public BinlogStart Start { get; init; } = BinlogStart.Current;
    /// <summary>Asks the server for a heartbeat when idle this long, so a dead link is noticed.</summary>
    public TimeSpan HeartbeatPeriod { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Declares the link dead after this long without any event (heartbeats count).</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Only rows of these tables ("db.table", or "db.*" for a whole schema); null for all.</summary>
    public IReadOnlySet<string>? Tables { get; init; }
    /// <summary>MariaDB: asks the server not to send events logged under <c>skip_replication</c> (the copy's own).</summary>
    public bool SkipMarkedEvents { get; init; }
    public int MaxReconnectAttempts { get; init; } = 10;
    public TimeSpan ReconnectBaseDelay { get; init; } = TimeSpan.FromMilliseconds(200);
    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>The server cannot serve row-based replication to us; retrying will not help.</summary>
public sealed class ReplicationSetupException : Exception
{
    public ReplicationSetupException(string message) : base(message) { }
    public ReplicationSetupException(string message, Exception inner) : base(message, inner) { }
    public ReplicationSetupException() { }
}
