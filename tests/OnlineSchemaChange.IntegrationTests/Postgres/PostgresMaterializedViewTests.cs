using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>Materialized views on the migrated table: rebuilt on the new table after the swap, or left with a note saying why.</summary>
[Collection("servers")]
public sealed class PostgresMaterializedViewTests(ServersFixture servers) : IAsyncLifetime
{
    private const string Alter = "ALTER COLUMN amount TYPE bigint";

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
        // A catalog change on the planner's empty copy, refused natively (a view reads the column): rebuilt instead, nothing changed first.
        Assert.Contains("The server refused the ALTER on t itself: cannot drop column gone", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("rebuilding the table online instead", result.Stderr, StringComparison.Ordinal);
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

    [Fact]
    public async Task Kill_9_while_a_materialized_view_is_rebuilt_then_resume_finishes_the_rebuild_and_leaves_nothing_of_ours()
    {
        uint second = await StopWhileRebuildingAsync(kill: true);

        // Another ALTER is refused: the operator would believe it applied.
        OscRunner.Result other = await OscRunner.RunAsync("alter", _uri, "--table", "t", "--alter", "ALTER COLUMN grp TYPE bigint", "--execute", "--resume");
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("had swapped in another ALTER", other.Stderr, StringComparison.Ordinal);
        Assert.Equal("1", await ScalarAsync(_connectionString, $"SELECT count(*) FROM pg_class WHERE relname = 't_osc_mv{second}'"));

        OscRunner.Result resumed = await OscRunner.RunAsync("alter", _uri, "--table", "t", "--alter", Alter, "--execute", "--resume", "--json");

        Assert.True(resumed.ExitCode == 0, resumed.Stderr + resumed.Stdout);
        string notes = string.Join("\n", LiveOscRun.ParseAll(resumed.Stdout)[^1].GetProperty("notes").EnumerateArray().Select(n => n.GetString()));
        Assert.Contains("had already swapped the tables", notes, StringComparison.Ordinal);
        Assert.Contains($"Dropped public.t_osc_mv{second}, the interrupted run's unfinished rebuild", notes, StringComparison.Ordinal);
        Assert.Contains("public.totals had already been rebuilt on the new table", notes, StringComparison.Ordinal);
        Assert.Contains("public.mv_second was rebuilt on the new table", notes, StringComparison.Ordinal);
        Assert.Contains("public.mv_third was rebuilt on the new table", notes, StringComparison.Ordinal);

        Assert.Equal("mv_second,mv_third,totals", await MaterializedViewsOnAsync("t"));
        Assert.Equal("", await MaterializedViewsOnAsync("t_osc_old"));
        Assert.Equal("100|bigint", await ScalarAsync(_connectionString,
            "SELECT (SELECT count(*) FROM mv_second) || '|' || (SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'mv_third'::regclass AND attname = 'top')"));
        Assert.Equal("second one|", await ScalarAsync(_connectionString,
            "SELECT obj_description('mv_second'::regclass, 'pg_class') || '|' || coalesce(obj_description('mv_third'::regclass, 'pg_class'), '')"));
        Assert.Equal("t_osc_old", await ScalarAsync(_connectionString, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 't\\_osc\\_%'"));
        Assert.Equal("", await LeftoversAsync(_connectionString));
    }

    [Fact]
    public async Task Kill_9_while_a_materialized_view_is_rebuilt_then_cleanup_drops_only_our_temporary_view_and_says_how_to_move_the_rest()
    {
        uint second = await StopWhileRebuildingAsync(kill: true);
        // An operator's views under names like ours: one without our mark, one marked for another table.
        await ExecuteAsync(_connectionString, """
            CREATE MATERIALIZED VIEW t_osc_mv1 AS SELECT 1 AS one;
            CREATE MATERIALIZED VIEW t_osc_mv2 AS SELECT 2 AS two;
            COMMENT ON MATERIALIZED VIEW t_osc_mv2 IS 'osc: temporary rebuild of the materialized view public.x on the table "public"."t2"';
            """);

        OscRunner.Result cleanup = await OscRunner.RunAsync("cleanup", _uri, "--table", "t", "--json");

        Assert.True(cleanup.ExitCode == 0, cleanup.Stderr + cleanup.Stdout);
        JsonElement report = cleanup.Json;
        string dropped = string.Join("\n", report.GetProperty("dropped").EnumerateArray().Select(n => n.GetString()));
        Assert.Contains($"public.t_osc_mv{second} (the unfinished rebuild of a materialized view)", dropped, StringComparison.Ordinal);
        Assert.Contains("public.t_osc_log", dropped, StringComparison.Ordinal);
        Assert.Single(report.GetProperty("dropped").EnumerateArray(), d => d.GetString()!.StartsWith("public.t_osc_mv", StringComparison.Ordinal));
        Assert.Equal("t_osc_mv1,t_osc_mv2", await ScalarAsync(_connectionString, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 't\\_osc\\_mv%'"));
        Assert.Equal("", await LeftoversAsync(_connectionString));

        // Each view still on the old table is named with the statements that move it; they do.
        string[] notes = report.GetProperty("notes").EnumerateArray().Select(n => n.GetString()!).ToArray();
        Assert.Equal(2, notes.Length);
        string secondNote = Assert.Single(notes, n => n.StartsWith("The materialized view public.mv_second still reads public.t_osc_old. To move it onto public.t, run: ", StringComparison.Ordinal));
        Assert.Single(notes, n => n.StartsWith("The materialized view public.mv_third still reads public.t_osc_old. To move it onto public.t, run: ", StringComparison.Ordinal));
        await ExecuteAsync(_connectionString, secondNote[(secondNote.IndexOf("run: ", StringComparison.Ordinal) + 5)..]);
        Assert.Equal("mv_second,totals", await MaterializedViewsOnAsync("t"));
        Assert.Equal("mv_third", await MaterializedViewsOnAsync("t_osc_old"));
        Assert.Equal("100|second one|mv_second_id", await ScalarAsync(_connectionString,
            "SELECT (SELECT count(*) FROM mv_second) || '|' || obj_description('mv_second'::regclass, 'pg_class') || '|' || (SELECT string_agg(indexrelid::regclass::text, ',') FROM pg_index WHERE indrelid = 'mv_second'::regclass)"));
    }

    [Fact]
    public async Task Ctrl_C_while_a_materialized_view_is_rebuilt_keeps_the_record_for_resume_which_finishes_and_drops_the_old_table()
    {
        await StopWhileRebuildingAsync(kill: false);

        OscRunner.Result resumed = await OscRunner.RunAsync("alter", _uri, "--table", "t", "--alter", Alter, "--execute", "--resume", "--drop-old-table", "--json");

        Assert.True(resumed.ExitCode == 0, resumed.Stderr + resumed.Stdout);
        string notes = string.Join("\n", LiveOscRun.ParseAll(resumed.Stdout)[^1].GetProperty("notes").EnumerateArray().Select(n => n.GetString()));
        Assert.Contains("public.mv_second was rebuilt on the new table", notes, StringComparison.Ordinal);
        Assert.Contains("public.mv_third was rebuilt on the new table", notes, StringComparison.Ordinal);
        Assert.Equal("mv_second,mv_third,totals", await MaterializedViewsOnAsync("t"));
        Assert.Equal("", await ScalarAsync(_connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 't\\_osc\\_%'"));
        Assert.Equal("", await LeftoversAsync(_connectionString));
    }

    /// <summary>
    /// Runs the migration as a process and stops it (kill -9, or SIGINT as Ctrl-C sends) once the swap is done, totals
    /// is rebuilt, and mv_second's rebuild waits to swap in (a reader holds mv_second), so mv_third is not begun;
    /// returns mv_second's oid.
    /// </summary>
    private async Task<uint> StopWhileRebuildingAsync(bool kill)
    {
        await ExecuteAsync(_connectionString, """
            CREATE MATERIALIZED VIEW mv_second AS SELECT id, amount FROM t WHERE id <= 100;
            CREATE UNIQUE INDEX mv_second_id ON mv_second (id);
            COMMENT ON MATERIALIZED VIEW mv_second IS 'second one';
            CREATE MATERIALIZED VIEW mv_third AS SELECT grp, max(amount) AS top FROM t GROUP BY grp;
            """);
        uint second = uint.Parse(await ScalarAsync(_connectionString, "SELECT 'mv_second'::regclass::oid"), System.Globalization.CultureInfo.InvariantCulture);
        await using var reader = new NpgsqlConnection(_connectionString);
        await reader.OpenAsync();
        await using (var begin = new NpgsqlCommand("BEGIN; SELECT count(*) FROM mv_second;", reader))
        {
            await begin.ExecuteNonQueryAsync();
        }

        await using (var osc = OscProcess.Start(_uri, "--table", "t", "--alter", Alter, "--execute", "--cut-over-lock-timeout-seconds", "60"))
        {
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (await ScalarAsync(_connectionString,
                       "SELECT count(*) FROM pg_stat_activity WHERE query = 'DROP MATERIALIZED VIEW public.mv_second' AND wait_event_type = 'Lock'") != "1")
            {
                if (osc.HasExited)
                {
                    Assert.Fail($"osc exited before the rebuild of mv_second waited to swap in: {osc.ExitReport()}");
                }

                Assert.True(DateTime.UtcNow < deadline, "timed out waiting for the rebuild of mv_second to wait on its reader");
                await Task.Delay(10);
            }

            if (kill)
            {
                osc.Kill();
            }
            else
            {
                osc.Signal("INT");
                Assert.Equal(130, await osc.WaitForExitAsync(TimeSpan.FromSeconds(60)));
                Assert.Contains("Stopped after the swap", osc.Stderr, StringComparison.Ordinal);
                Assert.Contains("--resume", osc.Stderr, StringComparison.Ordinal);
            }
        }

        await using (var commit = new NpgsqlCommand("COMMIT", reader))
        {
            await commit.ExecuteNonQueryAsync();
        }

        // Swapped; totals rebuilt; mv_second and mv_third still on the old table; what is left recorded.
        Assert.Equal("bigint", await ScalarAsync(_connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'amount'"));
        Assert.Equal("totals", await MaterializedViewsOnAsync("t"));
        Assert.Equal("mv_second,mv_third", await MaterializedViewsOnAsync("t_osc_old"));
        Assert.Equal("1", await ScalarAsync(_connectionString, "SELECT count(*) FROM t_osc_log WHERE id = 6"));
        if (kill)
        {
            // mv_second's rebuild is complete under our temporary name, and marked.
            Assert.Equal("100|osc: temporary rebuild of the materialized view public.mv_second on the table \"public\".\"t\"", await ScalarAsync(_connectionString,
                $"SELECT (SELECT count(*) FROM t_osc_mv{second}) || '|' || obj_description('t_osc_mv{second}'::regclass, 'pg_class')"));
        }
        else
        {
            // A stop that runs its course removes its temporary view and the slot, which only held WAL back after the swap.
            Assert.Equal("", await ScalarAsync(_connectionString, "SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 't\\_osc\\_mv%'"));
            Assert.Equal("", await LeftoversAsync(_connectionString));
        }

        return second;
    }

    /// <summary>The materialized views that read <paramref name="table"/>, by name.</summary>
    private Task<string> MaterializedViewsOnAsync(string table) => ScalarAsync(_connectionString, $"""
        SELECT coalesce(string_agg(DISTINCT v.relname, ',' ORDER BY v.relname), '') FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
        WHERE d.refobjid = '{table}'::regclass AND v.relkind = 'm' AND v.relname NOT LIKE 't\_osc\_mv%'
        """);
}
