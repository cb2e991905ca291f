namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>What the binlog does not say about a column (unless binlog_row_metadata=FULL): its name, signedness,
/// character set (null for binary strings) and the members of an ENUM or SET.</summary>
public sealed record ColumnSchema(string Name, string DataType, bool IsUnsigned, string? CharacterSet, IReadOnlyList<string>? Members = null);

public sealed record TableSchema(string Database, string Table, IReadOnlyList<ColumnSchema> Columns);

/// <summary>Column facts for a table, looked up synchronously while decoding so the decoder does no I/O. The client
/// fills its implementation from information_schema before the rows events of a table arrive.</summary>
public interface ITableSchemaProvider
{
    TableSchema? Find(string database, string table);
}
