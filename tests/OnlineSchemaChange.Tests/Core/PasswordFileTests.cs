using OnlineSchemaChange.Core.Connection;
using OnlineSchemaChange.MySql.Connection;
using OnlineSchemaChange.Postgres.Connection;

namespace OnlineSchemaChange.Tests.Core;

public sealed class PasswordFileTests : IDisposable
{
    private readonly string _path = Path.GetTempFileName();

    public void Dispose() => File.Delete(_path);

    [Fact]
    public void MyCnf_password_comes_from_the_client_group_only()
    {
        File.WriteAllText(_path, "[mysqld]\npassword=server-side\n\n[client]\n# comment\nuser = dba\npassword = \"s3cret\"\n");
        var target = new ConnectionTarget(DatabaseEngine.MySql, "h", 3306, "dba", "d");

        Assert.Equal("s3cret", new MyCnfPasswordSource(_path).Find(target));
        Assert.Null(new MyCnfPasswordSource(_path).Find(target with { Engine = DatabaseEngine.Postgres }));
    }

    [Fact]
    public void PgPass_matches_fields_with_wildcards_and_escapes()
    {
        File.WriteAllText(_path, "# host:port:db:user:password\nother:5432:*:dba:wrong\n127.0.0.1:5432:shop:dba:pa\\:ss\n*:*:*:dba:fallback\n");
        var source = new PgPassPasswordSource(_path);
        var target = new ConnectionTarget(DatabaseEngine.Postgres, "127.0.0.1", 5432, "dba", "shop");

        Assert.Equal("pa:ss", source.Find(target));
        Assert.Equal("fallback", source.Find(target with { Database = "other" }));
        Assert.Null(source.Find(target with { User = "nobody" }));
    }

    [Fact]
    public void Missing_files_give_no_password()
    {
        var target = new ConnectionTarget(DatabaseEngine.Postgres, "h", 5432, "u", "d");
        Assert.Null(new PgPassPasswordSource("/nonexistent/.pgpass").Find(target));
    }
}
