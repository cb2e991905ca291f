namespace OnlineSchemaChange.Core.Sql;

/// <summary>What one comma-separated clause of an ALTER TABLE does, as far as planning cares.</summary>
public enum AlterClauseKind
{
    Other,
    AddColumn,
    DropColumn,
    RenameColumn,

    /// <summary>MySQL CHANGE [COLUMN] old new type: a rename when the names differ, plus a redefinition.</summary>
    ChangeColumn,

    /// <summary>MySQL MODIFY [COLUMN] or PostgreSQL ALTER COLUMN ... [SET DATA] TYPE.</summary>
    RetypeColumn,
    AlterColumn,
    AddIndex,
    AddConstraint,
    DropIndexOrConstraint,
    RenameTable,

    /// <summary>MySQL ALGORITHM= or LOCK=: we choose these ourselves, so they are set aside.</summary>
    ExecutionOption,
    TableOption,
}

/// <summary>One clause, with its text cut verbatim from the statement and the column names it renames, if any.</summary>
public sealed record AlterClause(AlterClauseKind Kind, string Text, string? Column = null, string? NewColumn = null);
