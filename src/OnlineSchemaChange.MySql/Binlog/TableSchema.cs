namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>What the binlog does not say about a column (unless binlog_row_metadata=FULL): its name, signedness,
/// character set (null for binary strings) and the members of an ENUM or SET.</summary>
public sealed record ColumnSchema(string Name, string DataType, bool IsUnsigned, string? CharacterSet, IReadOnlyList<string>? Members = null);

public sealed record TableSchema(string Database, string Table, IReadOnlyList<ColumnSchema> Columns)
{
    /// <summary>Whether these columns can be the ones a TABLE_MAP describes: same count, and each declared type
    /// logged as the binlog type it names. information_schema shows the table as it is now; when a DDL has
    /// happened since the event was written this catches most differences (not a rename, nor a change of
    /// signedness or character set alone).</summary>
    public bool Describes(TableMapEvent map)
    {
        if (Columns.Count != map.ColumnCount)
        {
            return false;
        }

        for (var i = 0; i < Columns.Count; i++)
        {
            if (!LoggedAs(Columns[i].DataType, map.ColumnTypes[i]))
            {
                return false;
            }
        }

        return true;
    }

    private static bool LoggedAs(string dataType, ColumnType logged) => dataType switch
    {
        "tinyint" or "bool" or "boolean" => logged == ColumnType.Tiny,
        "smallint" => logged == ColumnType.Short,
        "mediumint" => logged == ColumnType.Int24,
        "int" or "integer" => logged == ColumnType.Long,
        "bigint" => logged == ColumnType.LongLong,
        "float" => logged == ColumnType.Float,
        "double" or "real" => logged == ColumnType.Double,
        "decimal" or "numeric" => logged is ColumnType.NewDecimal or ColumnType.Decimal,
        "date" => logged is ColumnType.Date or ColumnType.NewDate,
        "datetime" => logged is ColumnType.DateTime or ColumnType.DateTime2,
        "timestamp" => logged is ColumnType.Timestamp or ColumnType.Timestamp2,
        "time" => logged is ColumnType.Time or ColumnType.Time2,
        "year" => logged == ColumnType.Year,
        "bit" => logged == ColumnType.Bit,
        "char" or "binary" or "enum" or "set" => logged is ColumnType.String or ColumnType.Enum or ColumnType.Set,
        "varchar" or "varbinary" => logged is ColumnType.VarChar or ColumnType.VarString,
        "tinytext" or "text" or "mediumtext" or "longtext" or "tinyblob" or "blob" or "mediumblob" or "longblob" =>
            logged is ColumnType.Blob or ColumnType.TinyBlob or ColumnType.MediumBlob or ColumnType.LongBlob,
        "json" => logged is ColumnType.Json or ColumnType.Blob,
        "geometry" or "point" or "linestring" or "polygon" or "multipoint" or "multilinestring" or "multipolygon" or "geometrycollection" =>
            logged == ColumnType.Geometry,
        _ => true, // a type we do not know (e.g. MariaDB's inet6, uuid): no evidence either way
    };
}

/// <summary>Column facts for a table, looked up synchronously while decoding so the decoder does no I/O. The client
/// fills its implementation from information_schema before the rows events of a table arrive.</summary>
public interface ITableSchemaProvider
{
    TableSchema? Find(string database, string table);
}
