namespace OnlineSchemaChange.Core.Sql;

public enum AlterStatementKind
{
    AlterTable,

    /// <summary>CREATE [UNIQUE] INDEX ... ON the table: PostgreSQL cannot add a plain index through ALTER TABLE.</summary>
    CreateIndex,
}
