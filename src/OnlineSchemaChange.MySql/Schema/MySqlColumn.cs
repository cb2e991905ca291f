namespace OnlineSchemaChange.MySql.Schema;

/// <summary>A column as information_schema describes it; enough to tell what an ALTER changed.</summary>
public sealed record MySqlColumn(string Name, string ColumnType, bool Nullable, bool HasDefault, bool Generated);
