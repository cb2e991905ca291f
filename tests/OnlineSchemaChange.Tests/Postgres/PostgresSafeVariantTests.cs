using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.Postgres.Plan;

namespace OnlineSchemaChange.Tests.Postgres;

public sealed class PostgresSafeVariantTests
{
    private static readonly TableName Orders = new("public", "orders");

    private static string Sql(string alter) =>
        string.Join("\n", PostgresSafeVariant.TryBuild(AlterStatement.Parse(alter, Orders, SqlDialect.Postgres), Orders)!.Select(s => s.Sql));

    [Fact]
    public void Create_index_becomes_concurrent() =>
        Assert.Contains("CREATE INDEX CONCURRENTLY \"ix\" ON \"public\".\"orders\" (a)", Sql("CREATE INDEX ix ON orders (a)"), StringComparison.Ordinal);

    [Fact]
    public void Foreign_keys_are_added_not_valid_then_validated()
    {
        string sql = Sql("ADD CONSTRAINT fk_c FOREIGN KEY (c) REFERENCES customers (id)");
        Assert.Contains("ADD CONSTRAINT \"fk_c\" FOREIGN KEY (c) REFERENCES customers (id) NOT VALID", sql, StringComparison.Ordinal);
        Assert.Contains("VALIDATE CONSTRAINT \"fk_c\"", sql, StringComparison.Ordinal);
    }

    [Fact]
    public void Set_not_null_goes_through_a_validated_check()
    {
        string sql = Sql("ALTER COLUMN c SET NOT NULL");
        Assert.Contains("CHECK (\"c\" IS NOT NULL) NOT VALID", sql, StringComparison.Ordinal);
        Assert.True(sql.IndexOf("VALIDATE", StringComparison.Ordinal) < sql.IndexOf("SET NOT NULL", StringComparison.Ordinal));
    }

    [Fact]
    public void A_new_primary_key_is_built_concurrently_and_attached()
    {
        string sql = Sql("DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, region)");
        Assert.Contains("CREATE UNIQUE INDEX CONCURRENTLY \"orders_pkey_new\" ON \"public\".\"orders\" (id, region)", sql, StringComparison.Ordinal);
        Assert.Contains("DROP CONSTRAINT orders_pkey, ADD CONSTRAINT \"orders_pkey_new\" PRIMARY KEY USING INDEX \"orders_pkey_new\"", sql, StringComparison.Ordinal);
    }

    [Fact]
    public void No_safe_form_when_any_clause_lacks_one() =>
        Assert.Null(PostgresSafeVariant.TryBuild(AlterStatement.Parse("ALTER COLUMN c TYPE bigint, ADD CONSTRAINT k CHECK (c > 0)", Orders, SqlDialect.Postgres), Orders));
}
