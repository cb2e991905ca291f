using OnlineSchemaChange.Postgres.Verify;

namespace OnlineSchemaChange.Tests.Postgres;

public sealed class PostgresChecksumExpressionTests
{
    [Theory]
    [InlineData("integer", "x")]
    [InlineData("bigint", "x")]
    [InlineData("timestamp(3) without time zone", "x")]
    [InlineData("timestamp with time zone", "x")]
    [InlineData("uuid", "x")]
    [InlineData("bytea", "x")]
    [InlineData("text", "(x) COLLATE \"C\"")]
    [InlineData("character varying(40)", "(x) COLLATE \"C\"")]
    [InlineData("character(84)", "(x) COLLATE \"C\"")]
    [InlineData("numeric(10,2)", "(x)::text COLLATE \"C\"")]
    [InlineData("double precision", "(x)::text COLLATE \"C\"")]
    [InlineData("interval", "(x)::text COLLATE \"C\"")]
    [InlineData("jsonb", "(x)::text COLLATE \"C\"")]
    [InlineData("integer[]", "(x)::text COLLATE \"C\"")]
    [InlineData("mood", "(x)::text COLLATE \"C\"")]
    public void Each_type_enters_the_record_as_it_is_under_C_or_as_its_text(string type, string expected)
    {
        Assert.Equal($"hash_record_extended(ROW({expected}), 0)", PostgresChecksumExpression.RowHash([("x", type)], 15));
    }

    [Fact]
    public void Before_postgresql_14_the_record_text_is_hashed()
    {
        Assert.Equal("hashtextextended(ROW(a, b)::text, 0)", PostgresChecksumExpression.RowHash([("a", "integer"), ("b", "text")], 13));
    }
}
