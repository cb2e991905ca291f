namespace OnlineSchemaChange.Core.Sql;

public enum SqlTokenKind
{
    Word,
    QuotedIdentifier,
    StringLiteral,
    Number,
    Punctuation,
}

/// <summary>A token with its place in the source, so clauses can be cut out of the text verbatim.</summary>
public readonly record struct SqlToken(SqlTokenKind Kind, int Start, int Length, string Text)
{
    public int End => Start + Length;

    /// <summary>The identifier this token names: unquoted words as written, quoted ones without quotes.</summary>
    public string IdentifierValue => Kind == SqlTokenKind.QuotedIdentifier ? Unquote(Text) : Text;

    public bool IsWord(string word) => Kind == SqlTokenKind.Word && Text.Equals(word, StringComparison.OrdinalIgnoreCase);

    public bool IsPunctuation(char c) => Kind == SqlTokenKind.Punctuation && Text.Length == 1 && Text[0] == c;

    public bool IsIdentifier => Kind is SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier;

    private static string Unquote(string quoted)
    {
        char q = quoted[0];
        string inner = quoted[1..^1];
        return inner.Replace(new string(q, 2), new string(q, 1), StringComparison.Ordinal);
    }
}
