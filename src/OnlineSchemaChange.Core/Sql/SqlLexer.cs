namespace OnlineSchemaChange.Core.Sql;

/// <summary>
/// Splits SQL text into tokens, skipping white space and comments. It knows just enough of each dialect's quoting to
/// never mistake a ';' or ',' inside a string, identifier or comment for a separator.
/// </summary>
public static class SqlLexer
{
    public static IReadOnlyList<SqlToken> Tokenize(string sql, SqlDialect dialect)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var tokens = new List<SqlToken>();
        int i = 0;
        while (i < sql.Length)
        {
            char c = sql[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
            }
            else if (c == '-' && Peek(sql, i + 1) == '-' && (dialect == SqlDialect.Postgres || IsSpaceOrEnd(sql, i + 2)))
            {
                // MySQL only treats "-- " (dash dash space) as a comment; "1--1" is arithmetic there.
                i = SkipLine(sql, i);
            }
            else if (c == '#' && dialect == SqlDialect.MySql)
            {
                i = SkipLine(sql, i);
            }
            else if (c == '/' && Peek(sql, i + 1) == '*')
            {
                i = SkipBlockComment(sql, i, dialect);
            }
            else if (c == '\'' || (c == '"' && dialect == SqlDialect.MySql))
            {
                int end = SkipQuoted(sql, i, c, backslashEscapes: dialect == SqlDialect.MySql);
                tokens.Add(new SqlToken(SqlTokenKind.StringLiteral, i, end - i, sql[i..end]));
                i = end;
            }
            else if ((c == 'E' || c == 'e') && dialect == SqlDialect.Postgres && Peek(sql, i + 1) == '\'')
            {
                int end = SkipQuoted(sql, i + 1, '\'', backslashEscapes: true);
                tokens.Add(new SqlToken(SqlTokenKind.StringLiteral, i, end - i, sql[i..end]));
                i = end;
            }
            else if (c == '`' && dialect == SqlDialect.MySql || c == '"' && dialect == SqlDialect.Postgres)
            {
                int end = SkipQuoted(sql, i, c, backslashEscapes: false);
                tokens.Add(new SqlToken(SqlTokenKind.QuotedIdentifier, i, end - i, sql[i..end]));
                i = end;
            }
            else if (c == '$' && dialect == SqlDialect.Postgres && TryDollarTag(sql, i, out string tag))
            {
                int close = sql.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                if (close < 0)
                {
                    throw Unterminated("dollar-quoted string", i);
                }

                int end = close + tag.Length;
                tokens.Add(new SqlToken(SqlTokenKind.StringLiteral, i, end - i, sql[i..end]));
                i = end;
            }
            else if (char.IsDigit(c) || (c == '.' && char.IsDigit(Peek(sql, i + 1))))
            {
                int start = i;
                while (i < sql.Length && (char.IsLetterOrDigit(sql[i]) || sql[i] == '.'))
                {
                    i++;
                }

                tokens.Add(new SqlToken(SqlTokenKind.Number, start, i - start, sql[start..i]));
            }
            else if (IsWordStart(c))
            {
                int start = i;
                while (i < sql.Length && IsWordPart(sql[i]))
                {
                    i++;
                }

                tokens.Add(new SqlToken(SqlTokenKind.Word, start, i - start, sql[start..i]));
            }
            else
            {
                tokens.Add(new SqlToken(SqlTokenKind.Punctuation, i, 1, sql.Substring(i, 1)));
                i++;
            }
        }

        return tokens;
    }

    private static char Peek(string s, int i) => i < s.Length ? s[i] : '\0';

    private static bool IsSpaceOrEnd(string s, int i) => i >= s.Length || char.IsWhiteSpace(s[i]);

    private static bool IsWordStart(char c) => char.IsLetter(c) || c == '_' || c == '@' || c > 127;

    private static bool IsWordPart(char c) => char.IsLetterOrDigit(c) || c == '_' || c == '$' || c == '@' || c > 127;

    private static int SkipLine(string s, int i)
    {
        int nl = s.IndexOf('\n', i);
        return nl < 0 ? s.Length : nl + 1;
    }

    private static int SkipBlockComment(string s, int start, SqlDialect dialect)
    {
        // PostgreSQL nests block comments; MySQL does not.
        int depth = 0;
        int i = start;
        while (i < s.Length - 1)
        {
            if (s[i] == '/' && s[i + 1] == '*' && (depth == 0 || dialect == SqlDialect.Postgres))
            {
                depth++;
                i += 2;
            }
            else if (s[i] == '*' && s[i + 1] == '/')
            {
                depth--;
                i += 2;
                if (depth == 0)
                {
                    return i;
                }
            }
            else
            {
                i++;
            }
        }

        throw Unterminated("comment", start);
    }

    private static int SkipQuoted(string s, int start, char quote, bool backslashEscapes)
    {
        int i = start + 1;
        while (i < s.Length)
        {
            char c = s[i];
            if (backslashEscapes && c == '\\')
            {
                i += 2;
            }
            else if (c == quote)
            {
                if (i + 1 < s.Length && s[i + 1] == quote)
                {
                    i += 2;
                }
                else
                {
                    return i + 1;
                }
            }
            else
            {
                i++;
            }
        }

        throw Unterminated(quote == '\'' ? "string" : "quoted identifier", start);
    }

    private static bool TryDollarTag(string s, int start, out string tag)
    {
        int i = start + 1;
        while (i < s.Length && (char.IsLetterOrDigit(s[i]) || s[i] == '_'))
        {
            i++;
        }

        if (i < s.Length && s[i] == '$' && (i == start + 1 || !char.IsDigit(s[start + 1])))
        {
            tag = s[start..(i + 1)];
            return true;
        }

        tag = "";
        return false;
    }

    private static InvalidAlterException Unterminated(string what, int offset) =>
        new($"The ALTER has an unterminated {what} starting at character {offset + 1}.",
            "Close the quote or comment; when passing the ALTER through a shell, wrap it in single quotes.");
}
