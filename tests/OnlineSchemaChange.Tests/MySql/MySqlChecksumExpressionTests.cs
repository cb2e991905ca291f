using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.MySql.Verify;

namespace OnlineSchemaChange.Tests.MySql;

public sealed class MySqlChecksumExpressionTests
{
    private static readonly ColumnMapping Mapping = ColumnMapping.Build(
        [new TableColumn("id", false), new TableColumn("k", false), new TableColumn("c", false), new TableColumn("note", false)],
        [new TableColumn("id", false), new TableColumn("k", false), new TableColumn("c", false), new TableColumn("note", false)],
        new Dictionary<string, string>());

    private static readonly Dictionary<string, string> ShadowTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        ["id"] = "int(11)", ["k"] = "bigint(20)", ["c"] = "char(120)", ["note"] = "varchar(40)",
    };

    [Fact]
    public void An_unchanged_column_not_null_on_both_sides_is_hashed_without_a_null_mark()
    {
        var (original, shadow) = MySqlChecksumExpression.Build(Mapping, ShadowTypes,
            new HashSet<string> { "id", "c", "note" }, new HashSet<string> { "id", "c" });

        Assert.Equal("CONCAT_WS('#', `id`, CAST(`k` AS SIGNED), ISNULL(`k`), CRC32(`c`), CRC32(`note`), ISNULL(`note`))", original);
        Assert.Equal(original, shadow);
    }

    [Fact]
    public void Without_nullability_every_column_keeps_its_null_mark()
    {
        var (original, _) = MySqlChecksumExpression.Build(Mapping, ShadowTypes, new HashSet<string> { "id", "c", "note" });

        Assert.Equal("CONCAT_WS('#', `id`, ISNULL(`id`), CAST(`k` AS SIGNED), ISNULL(`k`), CRC32(`c`), ISNULL(`c`), CRC32(`note`), ISNULL(`note`))", original);
    }

    [Fact]
    public void A_changed_column_keeps_its_null_mark_even_when_named_never_null()
    {
        // Only unchanged columns drop the mark: a conversion could turn a value into NULL, which CONCAT_WS would skip.
        var (original, _) = MySqlChecksumExpression.Build(Mapping, ShadowTypes, new HashSet<string>(), new HashSet<string> { "k" });

        Assert.Contains("CAST(`k` AS SIGNED), ISNULL(`k`)", original, StringComparison.Ordinal);
    }
}
