using System.Text;

namespace OnlineSchemaChange.Core.Sql;

/// <summary>
/// An operator's ALTER, checked and taken apart: exactly one statement, about the table given with --table, split
/// into clauses we can classify and replay against a copy. Accepts the full statement
/// ("ALTER TABLE t ADD COLUMN c INT") or only its clauses ("ADD COLUMN c INT"), as gh-ost does.
/// </summary>
public sealed class AlterStatement
{
    // Statements that are never ALTER clauses. Words that start both (DROP, RENAME, ALTER, LOCK, COMMENT, SET) are
    // told apart by what follows them; see IsOtherStatement.
    private static readonly string[] OtherStatements =
    [
        "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "TRUNCATE", "GRANT", "REVOKE", "CALL", "UNLOCK", "BEGIN",
        "START", "COMMIT", "ROLLBACK", "VACUUM", "COPY", "DO", "EXECUTE", "WITH", "USE", "REINDEX", "CLUSTER", "LOAD",
        "HANDLER", "FLUSH", "KILL", "SHOW", "PREPARE", "REFRESH",
    ];

    private static readonly string[] DroppableObjects =
        ["TABLE", "DATABASE", "SCHEMA", "VIEW", "PROCEDURE", "FUNCTION", "TRIGGER", "USER", "SEQUENCE", "EVENT", "ROLE", "TYPE"];

    private AlterStatement(AlterStatementKind kind, string source, IReadOnlyList<AlterClause> clauses, string? createIndexTail,
        bool concurrently, bool unique, string? indexName)
    {
        Kind = kind;
        Source = source;
        Clauses = clauses;
        CreateIndexTail = createIndexTail;
        Concurrently = concurrently;
        Unique = unique;
        IndexName = indexName;
    }

    public AlterStatementKind Kind { get; }

    /// <summary>The text as the operator gave it.</summary>
    public string Source { get; }

    public IReadOnlyList<AlterClause> Clauses { get; }

    /// <summary>For CREATE INDEX: everything after the table name ("(col) WHERE ...").</summary>
    public string? CreateIndexTail { get; }

    /// <summary>For CREATE INDEX: whether the operator already asked for CONCURRENTLY.</summary>
    public bool Concurrently { get; }

    public bool Unique { get; }

    public string? IndexName { get; }

    public bool RenamesTable => Clauses.Any(c => c.Kind == AlterClauseKind.RenameTable);

    /// <summary>The clauses that change the table, without ALGORITHM=/LOCK= (we pick those per attempt).</summary>
    /// <summary>
    /// The clauses that change the table's definition, without ALGORITHM=/LOCK= (we pick those per attempt) and
    /// without a table rename (which would rename the planner's copy away from under it).
    /// </summary>
    public IEnumerable<AlterClause> ChangeClauses =>
        Clauses.Where(c => c.Kind is not (AlterClauseKind.ExecutionOption or AlterClauseKind.RenameTable));

    /// <summary>The new name a RENAME TO clause gives the table, if any.</summary>
    public string? NewTableName => Clauses.LastOrDefault(c => c.Kind == AlterClauseKind.RenameTable)?.NewColumn;

    /// <summary>Columns renamed by the statement, old name to new name.</summary>
    public IReadOnlyDictionary<string, string> RenamedColumns =>
        Clauses.Where(c => c.Kind is AlterClauseKind.RenameColumn or AlterClauseKind.ChangeColumn
                           && c.Column is not null && c.NewColumn is not null
                           && !c.Column.Equals(c.NewColumn, StringComparison.OrdinalIgnoreCase))
            .ToDictionary(c => c.Column!, c => c.NewColumn!, StringComparer.OrdinalIgnoreCase);

    /// <summary>The same change, aimed at another table (a copy), with extra clauses such as ALGORITHM=INSTANT.</summary>
    public string RenderFor(string quotedTarget, params string[] extraClauses)
    {
        ArgumentNullException.ThrowIfNull(extraClauses);
        if (Kind == AlterStatementKind.CreateIndex)
        {
            var sb = new StringBuilder("CREATE ");
            if (Unique)
            {
                sb.Append("UNIQUE ");
            }

            sb.Append("INDEX ");
            foreach (string extra in extraClauses)
            {
                sb.Append(extra).Append(' ');
            }

            return sb.Append("ON ").Append(quotedTarget).Append(' ').Append(CreateIndexTail).ToString();
        }

        var parts = ChangeClauses.Select(c => c.Text).Concat(extraClauses);
        return $"ALTER TABLE {quotedTarget} {string.Join(", ", parts)}";
    }

    public static AlterStatement Parse(string? text, TableName table, SqlDialect dialect)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new InvalidAlterException("The ALTER is empty.", "Pass the change with --alter, for example --alter \"ADD COLUMN c INT\".");
        }

        var tokens = SqlLexer.Tokenize(text, dialect).ToList();
        RejectSeveralStatements(text, tokens);
        if (tokens.Count == 0)
        {
            throw new InvalidAlterException("The ALTER is empty (only comments or a ';').", "Pass the change with --alter.");
        }

        SqlToken first = tokens[0];
        if (first.IsWord("ALTER") && tokens.Count > 1 && (tokens[1].IsWord("TABLE") || tokens[1].IsWord("ONLINE") || tokens[1].IsWord("IGNORE")))
        {
            return ParseAlterTable(text, tokens, table, dialect);
        }

        if (first.IsWord("ALTER") && tokens.Count > 1 && tokens[1].Kind == SqlTokenKind.Word
            && tokens[1].Text.ToUpperInvariant() is "INDEX" or "VIEW" or "DATABASE" or "SCHEMA" or "SEQUENCE" or "USER" or "ROLE" or "TYPE" or "FUNCTION" or "PROCEDURE" or "SYSTEM" or "EVENT")
        {
            throw new InvalidAlterException($"Only ALTER TABLE is supported, not ALTER {tokens[1].Text.ToUpperInvariant()}.", "Pass an ALTER TABLE statement or its clauses.");
        }

        if (IsOtherStatement(tokens))
        {
            throw new InvalidAlterException(
                $"Expected an ALTER TABLE statement or its clauses, but the text is a {first.Text.ToUpperInvariant()} statement.",
                "Pass only the change, for example --alter \"ADD COLUMN c INT\".");
        }

        if (first.IsWord("CREATE"))
        {
            return ParseCreateIndex(text, tokens, table);
        }

        return new AlterStatement(AlterStatementKind.AlterTable, text, SplitClauses(text, tokens, 0, dialect), null, false, false, null);
    }

    private static bool IsOtherStatement(List<SqlToken> tokens)
    {
        SqlToken first = tokens[0];
        if (first.Kind != SqlTokenKind.Word)
        {
            return false;
        }

        string word = first.Text.ToUpperInvariant();
        string next = tokens.Count > 1 && tokens[1].Kind == SqlTokenKind.Word ? tokens[1].Text.ToUpperInvariant() : "";
        return OtherStatements.Contains(word)
               || (word == "DROP" && DroppableObjects.Contains(next))
               || (word == "RENAME" && next is "TABLE" or "USER")
               || (word == "LOCK" && next is "TABLE" or "TABLES")
               || (word == "COMMENT" && next == "ON")
               || (word == "SET" && next is "SESSION" or "GLOBAL" or "LOCAL" or "NAMES" or "TRANSACTION" or "ROLE" or "PASSWORD")
               || (word == "CREATE" && next is "TABLE" or "DATABASE" or "SCHEMA" or "VIEW" or "TRIGGER" or "FUNCTION" or "PROCEDURE" or "USER");
    }

    private static void RejectSeveralStatements(string text, List<SqlToken> tokens)
    {
        int semicolon = tokens.FindIndex(t => t.IsPunctuation(';'));
        if (semicolon < 0)
        {
            return;
        }

        int next = tokens.FindIndex(semicolon + 1, t => !t.IsPunctuation(';'));
        if (next >= 0)
        {
            string tail = text[tokens[next].Start..].Trim();
            if (tail.Length > 40)
            {
                tail = tail[..40] + "...";
            }

            throw new InvalidAlterException(
                $"The ALTER holds more than one statement: \"{tail}\" follows a ';'.",
                "Pass exactly one ALTER; run other statements separately.");
        }

        tokens.RemoveRange(semicolon, tokens.Count - semicolon);
    }

    private static AlterStatement ParseAlterTable(string text, List<SqlToken> tokens, TableName table, SqlDialect dialect)
    {
        int i = 1;
        while (i < tokens.Count && (tokens[i].IsWord("ONLINE") || tokens[i].IsWord("IGNORE")))
        {
            i++;
        }

        if (i >= tokens.Count || !tokens[i].IsWord("TABLE"))
        {
            string what = i < tokens.Count ? tokens[i].Text.ToUpperInvariant() : "nothing";
            throw new InvalidAlterException($"Only ALTER TABLE is supported, not ALTER {what}.", "Pass an ALTER TABLE statement or its clauses.");
        }

        i++;
        if (i + 1 < tokens.Count && tokens[i].IsWord("IF") && tokens[i + 1].IsWord("EXISTS"))
        {
            i += 2;
        }

        if (i < tokens.Count && tokens[i].IsWord("ONLY"))
        {
            i++;
        }

        i = ReadTableReference(text, tokens, i, table);
        if (i >= tokens.Count)
        {
            throw new InvalidAlterException($"The ALTER TABLE {table} statement has no change in it.", "Add the change, for example ADD COLUMN c INT.");
        }

        return new AlterStatement(AlterStatementKind.AlterTable, text, SplitClauses(text, tokens, i, dialect), null, false, false, null);
    }

    private static AlterStatement ParseCreateIndex(string text, List<SqlToken> tokens, TableName table)
    {
        int i = 1;
        bool unique = false, concurrently = false;
        if (i < tokens.Count && tokens[i].IsWord("UNIQUE"))
        {
            unique = true;
            i++;
        }

        if (i >= tokens.Count || !tokens[i].IsWord("INDEX"))
        {
            throw new InvalidAlterException("Only ALTER TABLE and CREATE [UNIQUE] INDEX are supported.", "Pass an ALTER TABLE statement or its clauses.");
        }

        i++;
        if (i < tokens.Count && tokens[i].IsWord("CONCURRENTLY"))
        {
            concurrently = true;
            i++;
        }

        if (i + 2 < tokens.Count && tokens[i].IsWord("IF") && tokens[i + 1].IsWord("NOT") && tokens[i + 2].IsWord("EXISTS"))
        {
            throw new InvalidAlterException(
                "CREATE INDEX IF NOT EXISTS silently keeps an existing index, even an INVALID one left by a failed concurrent build.",
                "Drop IF NOT EXISTS; the plan checks for an existing index itself.");
        }

        string? indexName = null;
        if (i < tokens.Count && !tokens[i].IsWord("ON"))
        {
            indexName = tokens[i].IdentifierValue;
            i++;
        }

        if (i >= tokens.Count || !tokens[i].IsWord("ON"))
        {
            throw new InvalidAlterException("CREATE INDEX must name its table with ON.", "Write CREATE INDEX name ON table (columns).");
        }

        i++;
        if (i < tokens.Count && tokens[i].IsWord("ONLY"))
        {
            i++;
        }

        i = ReadTableReference(text, tokens, i, table);
        if (i >= tokens.Count)
        {
            throw new InvalidAlterException("CREATE INDEX has no column list.", "Write CREATE INDEX name ON table (columns).");
        }

        return new AlterStatement(AlterStatementKind.CreateIndex, text, [], text[tokens[i].Start..tokens[^1].End], concurrently, unique, indexName);
    }

    /// <summary>Reads "[schema.]table" and checks it is the table the operator named with --table.</summary>
    private static int ReadTableReference(string text, List<SqlToken> tokens, int i, TableName table)
    {
        if (i >= tokens.Count || !tokens[i].IsIdentifier)
        {
            throw new InvalidAlterException("The statement does not name a table where one is expected.", "Write ALTER TABLE name ... or pass only the clauses.");
        }

        string? schema = null;
        string name = tokens[i].IdentifierValue;
        int end = i + 1;
        if (end + 1 < tokens.Count && tokens[end].IsPunctuation('.') && tokens[end + 1].IsIdentifier)
        {
            schema = name;
            name = tokens[end + 1].IdentifierValue;
            end += 2;
        }

        bool sameName = name.Equals(table.Name, StringComparison.Ordinal);
        bool sameSchema = schema is null || table.Schema is null || schema.Equals(table.Schema, StringComparison.Ordinal);
        if (!sameName || !sameSchema)
        {
            string named = text[tokens[i].Start..tokens[end - 1].End];
            throw new InvalidAlterException(
                $"The ALTER names table {named}, but --table is {table}.",
                "Make --table and the statement name the same table, or pass only the clauses (ADD COLUMN ...).");
        }

        return end;
    }

    private static List<AlterClause> SplitClauses(string text, List<SqlToken> tokens, int from, SqlDialect dialect)
    {
        var clauses = new List<AlterClause>();
        int depth = 0, start = from;
        for (int i = from; i <= tokens.Count; i++)
        {
            bool atEnd = i == tokens.Count;
            if (!atEnd)
            {
                if (tokens[i].IsPunctuation('('))
                {
                    depth++;
                }
                else if (tokens[i].IsPunctuation(')'))
                {
                    depth--;
                }
            }

            if (atEnd || (depth == 0 && tokens[i].IsPunctuation(',')))
            {
                if (i == start)
                {
                    throw new InvalidAlterException("The ALTER has an empty clause (two commas in a row or a trailing comma).", "Remove the extra comma.");
                }

                clauses.Add(Classify(text, tokens.GetRange(start, i - start), dialect));
                start = i + 1;
            }
        }

        if (depth != 0)
        {
            throw new InvalidAlterException("The ALTER has unbalanced parentheses.", "Check the parentheses in the column and index definitions.");
        }

        return clauses;
    }

    private static AlterClause Classify(string text, List<SqlToken> t, SqlDialect dialect)
    {
        string clauseText = text[t[0].Start..t[^1].End];
        bool Is(int index, string word) => index < t.Count && t[index].IsWord(word);
        string? Ident(int index) => index < t.Count && t[index].IsIdentifier ? t[index].IdentifierValue : null;
        int Skip(int index, string optionalWord) => Is(index, optionalWord) ? index + 1 : index;

        if (Is(0, "ALGORITHM") || Is(0, "LOCK"))
        {
            return new AlterClause(AlterClauseKind.ExecutionOption, clauseText);
        }

        if (Is(0, "ADD"))
        {
            if (Is(1, "COLUMN"))
            {
                int at = Is(2, "IF") ? 5 : 2;
                return new AlterClause(AlterClauseKind.AddColumn, clauseText, Ident(at));
            }

            if (Is(1, "INDEX") || Is(1, "KEY") || Is(1, "FULLTEXT") || Is(1, "SPATIAL"))
            {
                return new AlterClause(AlterClauseKind.AddIndex, clauseText);
            }

            if (Is(1, "CONSTRAINT") || Is(1, "PRIMARY") || Is(1, "UNIQUE") || Is(1, "FOREIGN") || Is(1, "CHECK") || Is(1, "EXCLUDE"))
            {
                return new AlterClause(AlterClauseKind.AddConstraint, clauseText);
            }

            if (Is(1, "PARTITION"))
            {
                return new AlterClause(AlterClauseKind.Other, clauseText);
            }

            // "ADD c INT": COLUMN is optional in both dialects.
            return new AlterClause(AlterClauseKind.AddColumn, clauseText, Ident(1));
        }

        if (Is(0, "DROP"))
        {
            if (Is(1, "INDEX") || Is(1, "KEY") || Is(1, "CONSTRAINT") || Is(1, "PRIMARY") || Is(1, "FOREIGN") || Is(1, "CHECK"))
            {
                return new AlterClause(AlterClauseKind.DropIndexOrConstraint, clauseText);
            }

            if (Is(1, "PARTITION") || Is(1, "DEFAULT"))
            {
                return new AlterClause(AlterClauseKind.Other, clauseText);
            }

            int at = Skip(1, "COLUMN");
            at = Is(at, "IF") ? at + 2 : at;
            return new AlterClause(AlterClauseKind.DropColumn, clauseText, Ident(at));
        }

        if (Is(0, "RENAME"))
        {
            if (Is(1, "COLUMN"))
            {
                return new AlterClause(AlterClauseKind.RenameColumn, clauseText, Ident(2), Ident(4));
            }

            if (Is(1, "INDEX") || Is(1, "KEY") || Is(1, "CONSTRAINT"))
            {
                return new AlterClause(AlterClauseKind.Other, clauseText);
            }

            if (Is(1, "TO") || Is(1, "AS") || (dialect == SqlDialect.MySql && t.Count == 2))
            {
                return new AlterClause(AlterClauseKind.RenameTable, clauseText, NewColumn: Ident(t.Count - 1));
            }

            // PostgreSQL: RENAME [COLUMN] a TO b.
            if (Is(2, "TO"))
            {
                return new AlterClause(AlterClauseKind.RenameColumn, clauseText, Ident(1), Ident(3));
            }

            return new AlterClause(AlterClauseKind.Other, clauseText);
        }

        if (Is(0, "CHANGE") && dialect == SqlDialect.MySql)
        {
            int at = Skip(1, "COLUMN");
            return new AlterClause(AlterClauseKind.ChangeColumn, clauseText, Ident(at), Ident(at + 1));
        }

        if (Is(0, "MODIFY") && dialect == SqlDialect.MySql)
        {
            return new AlterClause(AlterClauseKind.RetypeColumn, clauseText, Ident(Skip(1, "COLUMN")));
        }

        if (Is(0, "ALTER"))
        {
            int at = Skip(1, "COLUMN");
            string? column = Ident(at);
            bool retype = Is(at + 1, "TYPE") || (Is(at + 1, "SET") && Is(at + 2, "DATA") && Is(at + 3, "TYPE"));
            return new AlterClause(retype ? AlterClauseKind.RetypeColumn : AlterClauseKind.AlterColumn, clauseText, column);
        }

        if (Is(0, "CONVERT") || Is(0, "ENGINE") || Is(0, "ROW_FORMAT") || Is(0, "DEFAULT") || Is(0, "CHARACTER")
            || Is(0, "CHARSET") || Is(0, "COLLATE") || Is(0, "COMMENT") || Is(0, "AUTO_INCREMENT") || Is(0, "KEY_BLOCK_SIZE")
            || Is(0, "FORCE") || (Is(0, "SET") && (dialect == SqlDialect.Postgres)) || Is(0, "RESET"))
        {
            return new AlterClause(AlterClauseKind.TableOption, clauseText);
        }

        return new AlterClause(AlterClauseKind.Other, clauseText);
    }
}
