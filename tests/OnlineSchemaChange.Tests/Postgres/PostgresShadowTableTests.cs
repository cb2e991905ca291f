using OnlineSchemaChange.Postgres.Migration;

namespace OnlineSchemaChange.Tests.Postgres;

/// <summary>How the operator's ALTER is pointed at the shadow's copies of the original's indexes and constraints.</summary>
public sealed class PostgresShadowTableTests
{
    private static readonly Dictionary<string, string> Names = new()
    {
        ["t_pkey"] = "t_osc_new_pkey",
        ["Mixed Case"] = "t_osc_new_k_key",
    };

    [Theory]
    [InlineData("ALTER TABLE s DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (id, a)", "ALTER TABLE s DROP CONSTRAINT \"t_osc_new_pkey\", ADD PRIMARY KEY (id, a)")]
    [InlineData("ALTER TABLE s DROP CONSTRAINT IF EXISTS t_pkey", "ALTER TABLE s DROP CONSTRAINT IF EXISTS \"t_osc_new_pkey\"")]
    [InlineData("ALTER TABLE s REPLICA IDENTITY USING INDEX \"Mixed Case\"", "ALTER TABLE s REPLICA IDENTITY USING INDEX \"t_osc_new_k_key\"")]
    [InlineData("ALTER TABLE s RENAME CONSTRAINT t_pkey TO t_pk", "ALTER TABLE s RENAME CONSTRAINT \"t_osc_new_pkey\" TO t_pk")]
    public void References_to_the_originals_indexes_point_at_the_shadows_copies(string alter, string expected) =>
        Assert.Equal(expected, PostgresShadowTable.RenameIndexReferences(alter, Names));

    [Theory]
    [InlineData("ALTER TABLE s ADD COLUMN t_pkey int")] // a column that happens to share the name
    [InlineData("ALTER TABLE s ADD CONSTRAINT other CHECK (a > 0)")]
    [InlineData("ALTER TABLE s ADD CONSTRAINT c CHECK (note <> 'DROP CONSTRAINT t_pkey')")]
    public void Leaves_everything_else_alone(string alter) =>
        Assert.Equal(alter, PostgresShadowTable.RenameIndexReferences(alter, Names));
}
