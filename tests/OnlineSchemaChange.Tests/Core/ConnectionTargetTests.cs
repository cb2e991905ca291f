using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Connection;

namespace OnlineSchemaChange.Tests.Core;

public sealed class ConnectionTargetTests
{
    [Fact]
    public void Parses_a_mysql_uri()
    {
        var target = ConnectionTarget.ParseUri("mysql://dba@db1.example:3307/shop?SslMode=Required");

        Assert.Equal(DatabaseEngine.MySql, target.Engine);
        Assert.Equal(("db1.example", 3307, "dba", "shop"), (target.Host, target.Port, target.User, target.Database));
        Assert.Null(target.Password);
        Assert.Equal("Required", target.Options["sslmode"]);
    }

    [Theory]
    [InlineData("postgres://u@h/db", DatabaseEngine.Postgres, 5432)]
    [InlineData("postgresql://u@h/db", DatabaseEngine.Postgres, 5432)]
    [InlineData("mariadb://u@h/db", DatabaseEngine.MySql, 3306)]
    public void Picks_the_engine_and_default_port_from_the_scheme(string uri, DatabaseEngine engine, int port)
    {
        var target = ConnectionTarget.ParseUri(uri);
        Assert.Equal((engine, port), (target.Engine, target.Port));
    }

    [Fact]
    public void A_password_in_the_uri_is_decoded_but_never_printed()
    {
        var target = ConnectionTarget.ParseUri("mysql://dba:p%40ss@h:3306/db");

        Assert.Equal("p@ss", target.Password);
        Assert.DoesNotContain("p@ss", target.Redacted, StringComparison.Ordinal);
        Assert.Equal("mysql://dba:***@h", ConnectionTarget.Redact("mysql://dba:secret@h"));
    }

    [Fact]
    public void Unknown_schemes_get_a_clear_error()
    {
        var e = Assert.Throws<OscException>(() => ConnectionTarget.ParseUri("oracle://u@h/db"));
        Assert.Contains("oracle", e.Message, StringComparison.Ordinal);
        Assert.NotNull(e.Hint);
    }

    [Fact]
    public void The_first_password_source_that_has_one_wins()
    {
        var target = new ConnectionTarget(DatabaseEngine.MySql, "h", 3306, "u", "d");
        var resolved = PasswordResolver.Resolve(target, [new FixedSource(null), new FixedSource("second"), new FixedSource("third")]);
        Assert.Equal("second", resolved.Password);

        var explicitPassword = PasswordResolver.Resolve(target with { Password = "given" }, [new FixedSource("other")]);
        Assert.Equal("given", explicitPassword.Password);
    }

    private sealed class FixedSource(string? password) : IPasswordSource
    {
        public string Name => "fixed";

        public string? Find(ConnectionTarget target) => password;
    }
}
