using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Verify;
using Xunit;

namespace OnlineSchemaChange.Tests.Core;

public sealed class UniqueKeysTests
{
    private static ColumnMapping Mapping(string[] source, string[] target, Dictionary<string, string>? renames = null) =>
        ColumnMapping.Build(source.Select(c => new TableColumn(c, false)).ToList(), target.Select(c => new TableColumn(c, false)).ToList(),
            renames ?? new Dictionary<string, string>());

    /// <param name="types">The columns' types, comma-separated, one per column.</param>
    private static UniqueKey Key(string name, string types, params string?[] columns) => new(name, columns, types.Split(", "), "");

    [Fact]
    public void Keys_the_original_already_has_are_not_new()
    {
        var mapping = Mapping(["id", "email", "n"], ["id", "email", "n", "extra"]);
        UniqueKey? added = UniqueKeys.FirstNew([Key("PRIMARY", "int", "id"), Key("by_email", "varchar(80) utf8mb4_general_ci", "email")],
            [Key("PRIMARY", "int", "id"), Key("by_email", "varchar(80) utf8mb4_general_ci", "email")], mapping, StringComparer.OrdinalIgnoreCase);
        Assert.Null(added);
    }

    [Fact]
    public void A_key_whose_column_was_renamed_is_the_same_key()
    {
        var mapping = Mapping(["id", "email"], ["id", "mail"], new Dictionary<string, string> { ["email"] = "mail" });
        Assert.Null(UniqueKeys.FirstNew([Key("PRIMARY", "int", "id"), Key("u", "text", "email")],
            [Key("PRIMARY", "int", "id"), Key("u", "text", "mail")], mapping, StringComparer.Ordinal));
    }

    [Fact]
    public void An_added_unique_key_is_new()
    {
        var mapping = Mapping(["id", "k"], ["id", "k"]);
        UniqueKey? added = UniqueKeys.FirstNew([Key("PRIMARY", "int", "id")], [Key("PRIMARY", "int", "id"), Key("uk", "int", "k")], mapping,
            StringComparer.OrdinalIgnoreCase);
        Assert.Equal("uk", added?.Name);
    }

    [Fact]
    public void A_primary_key_over_other_columns_is_new_even_though_it_is_named_as_before()
    {
        var mapping = Mapping(["id", "k"], ["id", "k"]);
        UniqueKey? added = UniqueKeys.FirstNew([Key("t_pkey", "int", "id")], [Key("t_pkey", "int", "k")], mapping, StringComparer.Ordinal);
        Assert.Equal("t_pkey", added?.Name);
    }

    [Fact]
    public void A_key_widened_over_a_unique_key_cannot_collide()
    {
        var mapping = Mapping(["id", "k"], ["id", "k"]);
        Assert.Null(UniqueKeys.FirstNew([Key("t_pkey", "int", "id")], [Key("t_pkey", "int, int", "k", "id")], mapping, StringComparer.Ordinal));
        // Unless the wider key's column changed type, or NULLs collide in it and not in the narrower one.
        Assert.NotNull(UniqueKeys.FirstNew([Key("t_pkey", "int", "id")], [Key("t_pkey", "int, bigint", "k", "id")], mapping, StringComparer.Ordinal));
        Assert.NotNull(UniqueKeys.FirstNew([Key("u", "int", "id")], [new UniqueKey("u2", ["k", "id"], ["int", "int"], "", NullsEqual: true)], mapping,
            StringComparer.Ordinal));
    }

    [Fact]
    public void A_partial_or_expression_key_counts_only_as_its_twin()
    {
        var mapping = Mapping(["id", "email"], ["id", "email"]);
        UniqueKey partial = new("active_email", ["email"], ["text"], "where active");
        Assert.Null(UniqueKeys.FirstNew([partial], [partial], mapping, StringComparer.Ordinal));
        // A partial key says nothing of the rows outside it: the whole-table key is new.
        Assert.NotNull(UniqueKeys.FirstNew([partial], [Key("email_key", "text", "email")], mapping, StringComparer.Ordinal));
        UniqueKey lowered = new("lower_email", [null], ["text"], "lower(email)");
        Assert.NotNull(UniqueKeys.FirstNew([Key("email_key", "text", "email")], [lowered], mapping, StringComparer.Ordinal));
    }

    [Theory]
    // A smaller scale rounds 1.4 and 1.2 to the same 1; a case-insensitive collation makes 'a' equal 'A'.
    [InlineData("numeric(10,2)", "numeric(10,0)")]
    [InlineData("varchar(20) utf8mb4_bin", "varchar(20) utf8mb4_general_ci")]
    public void A_key_over_a_retyped_column_is_new(string before, string after)
    {
        var mapping = Mapping(["id", "code"], ["id", "code"]);
        UniqueKey? added = UniqueKeys.FirstNew([Key("PRIMARY", "int", "id"), Key("by_code", before, "code")],
            [Key("PRIMARY", "int", "id"), Key("by_code", after, "code")], mapping, StringComparer.OrdinalIgnoreCase);
        Assert.Equal("by_code", added?.Name);
    }

    [Fact]
    public void Column_names_compare_as_the_engine_compares_them()
    {
        var mapping = Mapping(["id", "Code"], ["id", "Code"]);
        UniqueKey[] original = [Key("u", "int", "Code")];
        UniqueKey[] shadow = [Key("u", "int", "CODE")];
        Assert.Null(UniqueKeys.FirstNew(original, shadow, mapping, StringComparer.OrdinalIgnoreCase));
        Assert.NotNull(UniqueKeys.FirstNew(original, shadow, mapping, StringComparer.Ordinal));
    }

    [Fact]
    public void A_key_over_a_dropped_column_leaves_nothing_for_the_shadow_to_match()
    {
        var mapping = Mapping(["id", "gone"], ["id"]);
        Assert.Null(UniqueKeys.FirstNew([Key("PRIMARY", "int", "id"), Key("g", "int", "gone")], [Key("PRIMARY", "int", "id")], mapping,
            StringComparer.OrdinalIgnoreCase));
    }

    [Fact]
    public void Keys_that_include_the_row_key_cannot_collide_across_rows_and_others_can()
    {
        UniqueKey[] safe = [Key("PRIMARY", "int", "id"), Key("by_k_id", "int, int", "k", "id"), Key("by_expr", "int, int", null, "ID")];
        Assert.Null(UniqueKeys.FirstBesideKey(safe, ["id"], StringComparer.OrdinalIgnoreCase));
        Assert.Equal("by_expr", UniqueKeys.FirstBesideKey(safe, ["id"], StringComparer.Ordinal)?.Name);

        Assert.Equal("by_email", UniqueKeys.FirstBesideKey([Key("PRIMARY", "int", "id"), Key("by_email", "text", "email")], ["id"], StringComparer.Ordinal)?.Name);
        // A composite row key: a key over only part of it can collide.
        Assert.Equal("by_a", UniqueKeys.FirstBesideKey([Key("PRIMARY", "int, int", "a", "b"), Key("by_a", "int", "a")], ["a", "b"], StringComparer.Ordinal)?.Name);
        // An exclusion constraint collides by its operators, whatever its columns.
        Assert.Equal("no_overlap", UniqueKeys.FirstBesideKey([Key("t_pkey", "int", "id"), Key("no_overlap", "int, int4range", "id", "r") with { Exclusion = true }],
            ["id"], StringComparer.Ordinal)?.Name);
    }

    [Fact]
    public void The_refusal_beside_the_key_names_the_key_and_the_way_out()
    {
        var error = UniqueKeys.UnverifiedBesideKey(Key("by_email", "text", "email"));
        Assert.Contains("unique key by_email", error.Message, StringComparison.Ordinal);
        Assert.Contains("Run without --skip-verify", error.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public void Keys_buildable_after_the_copy_are_those_the_original_enforces_that_rows_of_different_keys_can_collide_on()
    {
        var mapping = Mapping(["id", "email", "k", "n"], ["id", "mail", "k", "n", "extra"], new Dictionary<string, string> { ["email"] = "mail" });
        UniqueKey[] original = [Key("PRIMARY", "int", "id"), Key("by_email", "text", "email"), Key("by_k_id", "int, int", "k", "id"), Key("by_n", "int", "n")];
        UniqueKey[] shadow =
        [
            Key("PRIMARY", "int", "id"), // the row key itself
            Key("by_email", "text", "mail"), // renamed, still enforced
            Key("by_k_id", "int, int", "k", "id"), // includes the row key: cannot collide across rows
            Key("by_n", "bigint", "n"), // retyped: not the original's any more
            Key("by_extra", "int", "extra"), // new
        ];

        IReadOnlyList<UniqueKey> buildable = UniqueKeys.BuildableAfterCopy(original, shadow, mapping, ["id"], StringComparer.Ordinal);

        Assert.Equal(["by_email"], buildable.Select(k => k.Name));
    }
}
