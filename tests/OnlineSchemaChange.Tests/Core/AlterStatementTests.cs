using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Tests.Core;

public sealed class AlterStatementTests
{
    private static readonly TableName Orders = new(null, "orders");

    [Theory]
    [InlineData("ADD COLUMN c INT", SqlDialect.MySql)]
    [InlineData("ALTER TABLE orders ADD COLUMN c INT", SqlDialect.MySql)]
    [InlineData("alter table `orders` add column c int;", SqlDialect.MySql)]
    [InlineData("ALTER TABLE shop.orders ADD COLUMN c INT", SqlDialect.MySql)]
    [InlineData("ALTER TABLE IF EXISTS ONLY \"orders\" ADD COLUMN c int", SqlDialect.Postgres)]
    public void Accepts_clauses_or_a_full_statement_about_the_table(string text, SqlDialect dialect)
    {
        var statement = AlterStatement.Parse(text, new TableName(text.Contains("shop.", StringComparison.Ordinal) ? "shop" : null, "orders"), dialect);

        AlterClause clause = Assert.Single(statement.Clauses);
        Assert.Equal(AlterClauseKind.AddColumn, clause.Kind);
        Assert.Equal("c", clause.Column);
        Assert.Equal(AlterStatementKind.AlterTable, statement.Kind);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("-- just a comment\n")]
    [InlineData(";")]
    public void Rejects_an_empty_alter(string text)
    {
        var e = Assert.Throws<InvalidAlterException>(() => AlterStatement.Parse(text, Orders, SqlDialect.MySql));
        Assert.Contains("empty", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ADD COLUMN c INT; DROP TABLE orders")]
    [InlineData("ADD COLUMN c INT;DROP TABLE orders;")]
    [InlineData("ALTER TABLE orders ADD COLUMN c INT; SELECT 1")]
    public void Rejects_a_tail_of_further_statements(string text)
    {
        var e = Assert.Throws<InvalidAlterException>(() => AlterStatement.Parse(text, Orders, SqlDialect.MySql));
        Assert.Contains("more than one statement", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ADD COLUMN c VARCHAR(10) DEFAULT 'a;b'", SqlDialect.MySql)]
    [InlineData("ADD COLUMN c VARCHAR(10) DEFAULT 'it''s; fine'", SqlDialect.MySql)]
    [InlineData("ADD COLUMN c VARCHAR(10) DEFAULT 'back\\'slash;'", SqlDialect.MySql)]
    [InlineData("ADD COLUMN `semi;colon` INT", SqlDialect.MySql)]
    [InlineData("ADD COLUMN c INT /* ; */", SqlDialect.MySql)]
    [InlineData("ADD COLUMN c text DEFAULT $$a;b$$", SqlDialect.Postgres)]
    [InlineData("ADD COLUMN \"semi;colon\" int", SqlDialect.Postgres)]
    public void Semicolons_inside_strings_identifiers_and_comments_are_not_separators(string text, SqlDialect dialect)
    {
        var statement = AlterStatement.Parse(text, Orders, dialect);
        Assert.Single(statement.Clauses);
    }

    [Theory]
    [InlineData("ALTER TABLE customers ADD COLUMN c INT")]
    [InlineData("ALTER TABLE other.orders ADD COLUMN c INT")]
    public void Rejects_an_alter_that_names_another_table(string text)
    {
        var e = Assert.Throws<InvalidAlterException>(() => AlterStatement.Parse(text, new TableName("shop", "orders"), SqlDialect.MySql));
        Assert.Contains("--table is shop.orders", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("DROP TABLE orders", "DROP")]
    [InlineData("UPDATE orders SET a = 1", "UPDATE")]
    [InlineData("TRUNCATE orders", "TRUNCATE")]
    [InlineData("RENAME TABLE orders TO x", "RENAME")]
    public void Rejects_other_statements_by_name(string text, string keyword)
    {
        var e = Assert.Throws<InvalidAlterException>(() => AlterStatement.Parse(text, Orders, SqlDialect.MySql));
        Assert.Contains(keyword, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ADD COLUMN c VARCHAR(10) DEFAULT 'unterminated")]
    [InlineData("ADD COLUMN c INT /* open comment")]
    public void Rejects_unterminated_quotes_and_comments(string text)
    {
        var e = Assert.Throws<InvalidAlterException>(() => AlterStatement.Parse(text, Orders, SqlDialect.MySql));
        Assert.Contains("unterminated", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Splits_clauses_at_top_level_commas_only()
    {
        var statement = AlterStatement.Parse(
            "ADD COLUMN price DECIMAL(10,2) NOT NULL DEFAULT 0, ADD INDEX ix (a, b), DROP COLUMN legacy, ALGORITHM=INPLACE, LOCK=NONE",
            Orders, SqlDialect.MySql);

        Assert.Equal(
            [AlterClauseKind.AddColumn, AlterClauseKind.AddIndex, AlterClauseKind.DropColumn, AlterClauseKind.ExecutionOption, AlterClauseKind.ExecutionOption],
            statement.Clauses.Select(c => c.Kind));
        Assert.Equal("ADD COLUMN price DECIMAL(10,2) NOT NULL DEFAULT 0", statement.Clauses[0].Text);
        Assert.Equal(3, statement.ChangeClauses.Count());
    }

    [Fact]
    public void Renders_for_another_table_without_the_operators_algorithm()
    {
        var statement = AlterStatement.Parse("ALTER TABLE orders ADD INDEX ix (a), ALGORITHM=COPY", Orders, SqlDialect.MySql);
        Assert.Equal("ALTER TABLE `copy` ADD INDEX ix (a), ALGORITHM=INSTANT", statement.RenderFor("`copy`", "ALGORITHM=INSTANT"));
    }

    [Theory]
    [InlineData("RENAME COLUMN a TO b", SqlDialect.MySql, "a", "b")]
    [InlineData("CHANGE COLUMN a b INT", SqlDialect.MySql, "a", "b")]
    [InlineData("CHANGE a `b` INT", SqlDialect.MySql, "a", "b")]
    [InlineData("RENAME a TO b", SqlDialect.Postgres, "a", "b")]
    [InlineData("RENAME COLUMN \"a\" TO \"b\"", SqlDialect.Postgres, "a", "b")]
    public void Knows_which_columns_are_renamed(string text, SqlDialect dialect, string from, string to)
    {
        var statement = AlterStatement.Parse(text, Orders, dialect);
        Assert.Equal(to, statement.RenamedColumns[from]);
    }

    [Fact]
    public void A_change_that_keeps_the_name_is_not_a_rename()
    {
        var statement = AlterStatement.Parse("CHANGE a a BIGINT", Orders, SqlDialect.MySql);
        Assert.Empty(statement.RenamedColumns);
    }

    [Theory]
    [InlineData("RENAME TO orders_old", SqlDialect.MySql)]
    [InlineData("ALTER TABLE orders RENAME TO orders_old", SqlDialect.Postgres)]
    public void Notices_a_table_rename_and_keeps_it_out_of_the_change_clauses(string text, SqlDialect dialect)
    {
        var statement = AlterStatement.Parse(text, Orders, dialect);
        Assert.True(statement.RenamesTable);
        Assert.Equal("orders_old", statement.NewTableName);
        Assert.Empty(statement.ChangeClauses);
    }

    [Fact]
    public void Parses_create_index_and_keeps_its_tail()
    {
        var statement = AlterStatement.Parse("CREATE UNIQUE INDEX CONCURRENTLY ix ON orders (a) WHERE b > 0", Orders, SqlDialect.Postgres);

        Assert.Equal(AlterStatementKind.CreateIndex, statement.Kind);
        Assert.True(statement.Unique);
        Assert.True(statement.Concurrently);
        Assert.Equal("ix", statement.IndexName);
        Assert.Equal("CREATE UNIQUE INDEX ON \"copy\" (a) WHERE b > 0", statement.RenderFor("\"copy\""));
    }

    [Fact]
    public void Refuses_create_index_if_not_exists_because_it_hides_invalid_indexes()
    {
        var e = Assert.Throws<InvalidAlterException>(() => AlterStatement.Parse("CREATE INDEX IF NOT EXISTS ix ON orders (a)", Orders, SqlDialect.Postgres));
        Assert.Contains("INVALID", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ADD COLUMN a INT,, ADD COLUMN b INT", "empty clause")]
    [InlineData("ADD COLUMN a DECIMAL(10,2", "unbalanced")]
    public void Rejects_malformed_clause_lists(string text, string expected)
    {
        var e = Assert.Throws<InvalidAlterException>(() => AlterStatement.Parse(text, Orders, SqlDialect.MySql));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
