namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>Payloads of the replication commands (MySQL protocol documentation: COM_REGISTER_SLAVE,
/// COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID).</summary>
public static class ReplicationCommands
{
    public const byte RegisterSlave = 0x15;
    public const byte BinlogDumpCommand = 0x12;
    public const byte BinlogDumpGtidCommand = 0x1E;

    /// <summary>u32 server id, hostname (u8 length, then the bytes, at most 60), empty user and password (u8 length
    /// each), u16 port, u32 rank, u32 master id. The hostname is what SHOW SLAVE HOSTS lists as the reader's Host.</summary>
    public static PacketWriter RegisterReplica(uint serverId, string reportHost = "")
    {
        ArgumentNullException.ThrowIfNull(reportHost);
        byte[] host = System.Text.Encoding.UTF8.GetBytes(reportHost);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(host.Length, 60, nameof(reportHost));
        return new PacketWriter().WriteByte(RegisterSlave).WriteUInt32(serverId)
            .WriteByte((byte)host.Length).WriteBytes(host).WriteByte(0).WriteByte(0)
            .WriteUInt16(0).WriteUInt32(0).WriteUInt32(0);
    }

    /// <summary>u32 position, u16 flags (0: block and wait for new events), u32 server id, file name to the end.</summary>
    public static PacketWriter BinlogDump(string fileName, uint position, uint serverId) =>
        new PacketWriter().WriteByte(BinlogDumpCommand).WriteUInt32(position).WriteUInt16(0).WriteUInt32(serverId).WriteString(fileName);

    /// <summary>u16 flags (0x04: position by GTID), u32 server id, u32 file name length and name (none), u64 position
    /// (4), u32 length of the encoded GTID set, the set.</summary>
    public static PacketWriter BinlogDumpGtid(MySqlGtidSet executed, uint serverId)
    {
        const ushort ThroughGtid = 0x04;
        var data = executed.Encode();
        return new PacketWriter().WriteByte(BinlogDumpGtidCommand).WriteUInt16(ThroughGtid).WriteUInt32(serverId)
            .WriteUInt32(0).WriteUInt64(4).WriteUInt32((uint)data.Length).WriteBytes(data);
    }
}
