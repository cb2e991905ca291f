using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Tests.Postgres;

public sealed class PostgresTypeCompatibilityTests
{
    [Theory]
    [InlineData("integer", "bigint", true)]
    [InlineData("bigint", "integer", false)]
    [InlineData("character varying(20)", "character varying(30)", true)]
    [InlineData("character varying(30)", "character varying(20)", false)]
    [InlineData("character varying(20)", "text", true)]
    [InlineData("text", "character varying(20)", false)]
    [InlineData("numeric(10,2)", "numeric(12,2)", true)]
    [InlineData("numeric(10,2)", "numeric(10,0)", false)]
    [InlineData("timestamp(3) without time zone", "timestamp(6) without time zone", true)]
    [InlineData("timestamp without time zone", "timestamp with time zone", false)]
    [InlineData("integer", "text", false)]
    [InlineData("real", "double precision", true)]
    public void Tells_widenings_from_changes_the_application_sees(string from, string to, bool widening) =>
        Assert.Equal(widening, PostgresTypeCompatibility.IsWidening(from, to));
}
