namespace OnlineSchemaChange.Postgres.Plan;

/// <summary>A column by attribute number, the identity PostgreSQL keeps across renames.</summary>
public sealed record PostgresColumn(int Number, string Name, string Type, bool NotNull, bool HasDefault, bool Generated);
