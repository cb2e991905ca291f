using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>Per-column metadata in TABLE_MAP (log_event.cc, Table_map_log_event::save_field_metadata), packed into
/// one ushort per column.</summary>
public static class ColumnMetadata
{
    public static ushort Read(ColumnType type, ref PacketReader reader)
    {
        switch (type)
        {
            case ColumnType.Float or ColumnType.Double or ColumnType.Blob or ColumnType.TinyBlob or ColumnType.MediumBlob
                or ColumnType.LongBlob or ColumnType.Geometry or ColumnType.Json
                or ColumnType.Time2 or ColumnType.DateTime2 or ColumnType.Timestamp2:
                return reader.ReadByte();
            case ColumnType.VarChar or ColumnType.VarString or ColumnType.Bit:
                return reader.ReadUInt16(); // VARCHAR: max byte length; BIT: low byte bits % 8, high byte whole bytes
            case ColumnType.NewDecimal or ColumnType.String or ColumnType.Enum or ColumnType.Set:
                {
                    // Two bytes in order: precision then scale, or real type then length.
                    var first = reader.ReadByte();
                    return (ushort)((first << 8) | reader.ReadByte());
                }

            default:
                return 0;
        }
    }
}
