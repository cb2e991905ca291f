using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>Materialized views on the migrated table: rebuilt on the new table after the swap, or left with a note saying why.</summary>
[Collection("servers")]
public sealed class PostgresMaterializedViewTests(ServersFixture servers) : IAsyncLifetime
{
    private string _connectionString = "";
    private string _uri = "";
    private string _role = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewPostgresDatabaseAsync("matview");
        var builder = new NpgsqlConnectionStringBuilder(_connectionString);
        _uri = $"postgres://{Uri.EscapeDataString(builder.Username!)}:{Uri.EscapeDataString(builder.Password!)}@{builder.Host}:{builder.Port}/{builder.Database}";
        _role = "osc_mv_reader_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync(_connectionString, $"""
            CREATE ROLE {_role};
            CREATE TABLE t (id bigint PRIMARY KEY, grp int NOT NULL, amount int NOT NULL, gone text);
            INSERT INTO t SELECT g, g % 10, g, 'x' FROM generate_series(1, 5000) g;
            CREATE MATERIALIZED VIEW totals WITH (fillfactor = 90) AS SELECT grp, sum(amount) AS total, count(*) AS n FROM t GROUP BY grp;
            CREATE UNIQUE INDEX "Totals by grp" ON totals (grp);
            COMMENT ON MATERIALIZED VIEW totals IS 'per group';
            GRANT SELECT ON totals TO {_role};
            """);
    }

    public async Task DisposeAsync() => await ExecuteAsync(_connectionString, $"DROP OWNED BY {_role}; DROP ROLE {_role}");

    [Fact]
    public async Task A_materialized_view_is_rebuilt_on_the_new_table_with_its_index_grant_comment_and_options()
    {
        await ExecuteAsync(_connectionString, "CREATE MATERIALIZED VIEW later AS SELECT id FROM t WITH NO DATA");
        // Rows written after the view's last refresh: the rebuilt view holds them, as after a REFRESH.
        await ExecuteAsync(_connectionString, "INSERT INTO t SELECT g, 3, 1000, 'x' FROM generate_series(5001, 5010) g");

        OscRunner.Result result = await OscRunner.RunAsync("alter", _uri, "--table", "t", "--alter", "ALTER COLUMN amount TYPE bigint", "--execute", "--json");

        Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
        JsonElement done = LiveOscRun.ParseAll(result.Stdout)[^1];
        string notes = string.Join("\n", done.GetProperty("notes").EnumerateArray().Select(n => n.GetString()));
        Assert.Contains("public.totals was rebuilt on the new table", notes, StringComparison.Ordinal);
        Assert.Contains("public.later was rebuilt on the new table", notes, StringComparison.Ordinal);

        // Both read the new table now, none the old one, and nothing of ours is left.
        Assert.Equal("later,totals", await ScalarAsync(_connectionString, """
            SELECT string_agg(DISTINCT v.relname, ',' ORDER BY v.relname) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
            WHERE d.refobjid = 't'::regclass AND v.relkind = 'm'
            """));
        Assert.Equal("0", await ScalarAsync(_connectionString,
            "SELECT count(*) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE d.refobjid = 't_osc_old'::regclass AND r.ev_class <> 't_osc_old'::regclass"));
        Assert.Equal("", await ScalarAsync(_connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 'osc\\_new\\_%'"));

        // sum() of the retyped bigint column is numeric: the view was built on the new column, not the old int one.
        Assert.Equal("numeric", await ScalarAsync(_connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'totals'::regclass AND attname = 'total'"));
        Assert.Equal("510", await ScalarAsync(_connectionString, "SELECT n FROM totals WHERE grp = 3"));
        Assert.Equal(await ScalarAsync(_connectionString, "SELECT sum(amount) FROM t WHERE grp = 3"), await ScalarAsync(_connectionString, "SELECT total FROM totals WHERE grp = 3"));
        Assert.Equal("true|false", await ScalarAsync(_connectionString,
            "SELECT (SELECT relispopulated FROM pg_class WHERE oid = 'totals'::regclass) || '|' || (SELECT relispopulated FROM pg_class WHERE oid = 'later'::regclass)"));
        Assert.Equal("Totals by grp|true", await ScalarAsync(_connectionString,
            "SELECT c.relname || '|' || i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'totals'::regclass"));
        Assert.Equal("per group|{fillfactor=90}|true", await ScalarAsync(_connectionString,
            $"SELECT obj_description('totals'::regclass, 'pg_class') || '|' || (SELECT reloptions::text FROM pg_class WHERE oid = 'totals'::regclass) || '|' || has_table_privilege('{_role}', 'totals', 'SELECT')"));

        // Its unique index serves REFRESH ... CONCURRENTLY, which now sees the new table's writes.
        await ExecuteAsync(_connectionString, "INSERT INTO t VALUES (9000, 4, 7, 'x'); REFRESH MATERIALIZED VIEW CONCURRENTLY totals");
        Assert.Equal(await ScalarAsync(_connectionString, "SELECT sum(amount) FROM t WHERE grp = 4"), await ScalarAsync(_connectionString, "SELECT total FROM totals WHERE grp = 4"));
    }

    [Fact]
    public async Task A_materialized_view_others_depend_on_or_that_no_longer_fits_stays_on_the_old_table_with_a_note()
    {
        await ExecuteAsync(_connectionString, """
            CREATE VIEW big_totals AS SELECT grp FROM totals WHERE total > 100;
            CREATE MATERIALIZED VIEW uses_gone AS SELECT id, gone FROM t;
            """);

        // --drop-old-table cannot drop what those views still read: the old table stays, with a note, and the swap stands.
        OscRunner.Result result = await OscRunner.RunAsync("alter", _uri, "--table", "t", "--alter", "DROP COLUMN gone", "--execute", "--drop-old-table");

        Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
        Assert.Contains("public.totals still reads public.t_osc_old: public.big_totals depend on it", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("public.uses_gone still reads public.t_osc_old: rebuilding it on the new table failed", result.Stdout, StringComparison.Ordinal);
        Assert.Equal("totals,uses_gone", await ScalarAsync(_connectionString, """
            SELECT string_agg(DISTINCT v.relname, ',' ORDER BY v.relname) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
            WHERE d.refobjid = 't_osc_old'::regclass AND v.relkind = 'm'
            """));
        Assert.Equal("5000", await ScalarAsync(_connectionString, "SELECT count(*) FROM uses_gone"));
        Assert.Equal("", await ScalarAsync(_connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 'osc\\_new\\_%'"));
        Assert.Contains("public.t_osc_old was kept despite --drop-old-table", result.Stdout, StringComparison.Ordinal);
        Assert.Equal("0", await ScalarAsync(_connectionString, "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'gone'"));
    }
}
