using OnlineSchemaChange.MySql.Plan;

namespace OnlineSchemaChange.Tests.MySql;

public sealed class MySqlTypeCompatibilityTests
{
    [Theory]
    [InlineData("int(11)", "bigint(20)", true)]
    [InlineData("int", "bigint", true)]
    [InlineData("bigint(20)", "int(11)", false)]
    [InlineData("int(11)", "int(10) unsigned", false)]
    [InlineData("int(10) unsigned", "bigint(20)", true)]
    [InlineData("int(10) unsigned", "int(11)", false)]
    [InlineData("varchar(20)", "varchar(255)", true)]
    [InlineData("varchar(255)", "varchar(20)", false)]
    [InlineData("varchar(255)", "text", true)]
    [InlineData("text", "varchar(255)", false)]
    [InlineData("text", "mediumtext", true)]
    [InlineData("decimal(10,2)", "decimal(12,2)", true)]
    [InlineData("decimal(10,2)", "decimal(10,3)", false)]
    [InlineData("datetime", "datetime(6)", true)]
    [InlineData("datetime(6)", "datetime", false)]
    [InlineData("enum('a','b')", "enum('a','b','c')", true)]
    [InlineData("enum('a','b')", "enum('b','a')", false)]
    [InlineData("int(11)", "varchar(20)", false)]
    [InlineData("float", "double", true)]
    [InlineData("varbinary(16)", "blob", true)]
    public void Tells_widenings_from_changes_the_application_sees(string from, string to, bool widening) =>
        Assert.Equal(widening, MySqlTypeCompatibility.IsWidening(from, to));
}
