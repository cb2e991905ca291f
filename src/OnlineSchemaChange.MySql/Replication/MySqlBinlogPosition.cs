using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.Core.Changes;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>
/// A binlog file and offset. Files are ordered by their numeric suffix (binlog.000009 before binlog.000010), then
/// offsets within a file. <paramref name="heldFrom"/> is where the oldest prepared XA transaction whose rows the feed
/// still holds begins, when there is one: a resume must read it again, so that is the resume point.
/// </summary>
public sealed class MySqlBinlogPosition(string file, long position, MySqlBinlogPosition? heldFrom = null) : ReplicationPosition
{
    public string File { get; } = file;

    public long Position { get; } = position;

    /// <summary>The start of the oldest prepared XA transaction held in memory at this position, if any.</summary>
    public MySqlBinlogPosition? HeldFrom { get; } = heldFrom;

    public override ReplicationPosition ResumePoint => HeldFrom is { } held && held < this ? held : this;

    public override int CompareTo(ReplicationPosition? other)
    {
        if (other is not MySqlBinlogPosition p)
        {
            return 1;
        }

        int byFile = Sequence(File).CompareTo(Sequence(p.File));
        return byFile != 0 ? byFile : Position.CompareTo(p.Position);
    }

    public override int GetHashCode() => HashCode.Combine(File, Position);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{File}:{Position}");

    /// <summary>The server's current end of binlog (SHOW MASTER STATUS): every transaction committed so far ends at or before it.</summary>
    public static async Task<MySqlBinlogPosition> CurrentAsync(MySqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand("SHOW MASTER STATUS", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new MySqlBinlogPosition(reader.GetString(0), Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture));
    }

    /// <summary>Reads back <see cref="ToString"/>'s FILE:OFFSET form (what checkpoints store).</summary>
    public static MySqlBinlogPosition Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int colon = text.LastIndexOf(':');
        return colon > 0 && long.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long position)
            ? new MySqlBinlogPosition(text[..colon], position)
            : throw new FormatException($"Expected a binlog position as FILE:OFFSET, got '{text}'.");
    }

    private static long Sequence(string file)
    {
        int dot = file.LastIndexOf('.');
        return long.TryParse(file.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : 0;
    }
}
