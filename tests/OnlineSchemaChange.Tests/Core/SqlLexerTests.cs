using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Tests.Core;

public sealed class SqlLexerTests
{
    [Fact]
    public void MySql_dash_dash_needs_a_space_to_start_a_comment()
    {
        var tokens = SqlLexer.Tokenize("a--1", SqlDialect.MySql);
        Assert.Equal(["a", "-", "-", "1"], tokens.Select(t => t.Text));

        Assert.Equal(["a"], SqlLexer.Tokenize("a -- comment", SqlDialect.MySql).Select(t => t.Text));
    }

    [Fact]
    public void Postgres_block_comments_nest()
    {
        var tokens = SqlLexer.Tokenize("a /* outer /* inner */ still comment */ b", SqlDialect.Postgres);
        Assert.Equal(["a", "b"], tokens.Select(t => t.Text));
    }

    [Fact]
    public void Quoted_identifiers_unquote_doubled_quotes()
    {
        SqlToken token = Assert.Single(SqlLexer.Tokenize("`we``ird`", SqlDialect.MySql));
        Assert.Equal(SqlTokenKind.QuotedIdentifier, token.Kind);
        Assert.Equal("we`ird", token.IdentifierValue);
    }

    [Fact]
    public void Tagged_dollar_quotes_end_only_at_the_same_tag()
    {
        var tokens = SqlLexer.Tokenize("$fn$ a $$ ; $fn$ x", SqlDialect.Postgres);
        Assert.Equal(SqlTokenKind.StringLiteral, tokens[0].Kind);
        Assert.Equal("x", tokens[1].Text);
    }

    [Fact]
    public void Token_positions_cut_the_source_verbatim()
    {
        const string sql = "ADD  c   INT";
        var tokens = SqlLexer.Tokenize(sql, SqlDialect.MySql);
        Assert.Equal("c   INT", sql[tokens[1].Start..tokens[2].End]);
    }
}
