using System.Diagnostics;
using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.Postgres.Copy;
using OnlineSchemaChange.Postgres.Cutover;
using OnlineSchemaChange.Postgres.Migration;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgEngineSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>The swap on a real PostgreSQL 15: one transaction, everything that depends on the table carried over, and a lock wait that never exceeds the timeout.</summary>
[Collection("servers")]
public sealed class PostgresCutoverTests(ServersFixture servers) : IAsyncLifetime
{
    private string _connectionString = "";
    private string _role = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewPostgresDatabaseAsync("cutover");
        _role = "osc_reader_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync(_connectionString, $"""
            CREATE ROLE {_role};
            CREATE TABLE parent (id int PRIMARY KEY);
            INSERT INTO parent SELECT generate_series(1, 10);
            CREATE TABLE t (id serial PRIMARY KEY, a int NOT NULL, b text, p int REFERENCES parent (id));
            CREATE INDEX t_by_a ON t (a);
            INSERT INTO t (a, b, p) SELECT g % 100, 'row ' || g, 1 + g % 10 FROM generate_series(1, 2000) g;
            CREATE TABLE child (id int PRIMARY KEY, t_id int CONSTRAINT child_t_fk REFERENCES t (id) ON DELETE CASCADE);
            INSERT INTO child SELECT g, g FROM generate_series(1, 50) g;
            CREATE VIEW v AS SELECT id, a FROM t WHERE a >= 0;
            CREATE VIEW v_b AS SELECT id, b FROM t;
            GRANT SELECT ON t TO {_role};
            GRANT SELECT ON v TO {_role};
            COMMENT ON TABLE t IS 'the table';
            COMMENT ON COLUMN t.b IS 'the b column';
            CREATE FUNCTION fill_b() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.b := coalesce(NEW.b, 'from trigger'); RETURN NEW; END $$;
            CREATE TRIGGER t_fill_b BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION fill_b();
            ALTER TABLE t ENABLE ROW LEVEL SECURITY;
            CREATE POLICY t_nonnegative ON t USING (a >= 0);
            ALTER TABLE t SET (fillfactor = 80);
            """);
    }

    public async Task DisposeAsync()
    {
        await ExecuteAsync(_connectionString, $"DROP OWNED BY {_role}; DROP ROLE {_role}");
    }

    [Fact]
    public async Task Carries_over_the_owner_forced_row_security_column_grants_a_disabled_trigger_and_the_replica_identity()
    {
        string owner = "osc_owner_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync(_connectionString, $"""
            CREATE ROLE {owner};
            CREATE TABLE o (id int PRIMARY KEY, a int NOT NULL, secret text, CONSTRAINT o_a_key UNIQUE (a));
            INSERT INTO o SELECT g, g, 's' || g FROM generate_series(1, 500) g;
            ALTER TABLE o OWNER TO {owner};
            ALTER TABLE o ENABLE ROW LEVEL SECURITY;
            ALTER TABLE o FORCE ROW LEVEL SECURITY;
            GRANT SELECT (id, a) ON o TO {_role};
            CREATE FUNCTION o_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
            CREATE TRIGGER o_off BEFORE INSERT ON o FOR EACH ROW EXECUTE FUNCTION o_noop();
            ALTER TABLE o DISABLE TRIGGER o_off;
            ALTER TABLE o REPLICA IDENTITY USING INDEX o_a_key;
            """);
        try
        {
            var (facts, shadow) = await ShadowAndCopyAsync("o", "ALTER COLUMN secret TYPE varchar(20)");
            CutoverResult result = await new PostgresCutover(_connectionString, facts, shadow, NoDrain, new CutoverOptions()).RunAsync(CancellationToken.None);

            Assert.Equal(1, result.Attempts);
            Assert.Equal("character varying(20)", await ScalarAsync(_connectionString,
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'o'::regclass AND attname = 'secret'"));
            Assert.Equal($"{owner}|true|true", await ScalarAsync(_connectionString,
                "SELECT relowner::regrole::text || '|' || relrowsecurity || '|' || relforcerowsecurity FROM pg_class WHERE oid = 'o'::regclass"));
            Assert.Equal("true|true|false", await ScalarAsync(_connectionString,
                $"SELECT has_column_privilege('{_role}', 'o', 'id', 'SELECT') || '|' || has_column_privilege('{_role}', 'o', 'a', 'SELECT') || '|' || has_column_privilege('{_role}', 'o', 'secret', 'SELECT')"));
            Assert.Equal("D", await ScalarAsync(_connectionString, "SELECT tgenabled::text FROM pg_trigger WHERE tgrelid = 'o'::regclass AND tgname = 'o_off'"));
            Assert.Equal("i|o_a_key", await ScalarAsync(_connectionString,
                "SELECT c.relreplident::text || '|' || (SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = c.oid AND indisreplident) FROM pg_class c WHERE c.oid = 'o'::regclass"));
        }
        finally
        {
            await ExecuteAsync(_connectionString, $"DROP TABLE IF EXISTS o, o_osc_old, o_osc_new; DROP FUNCTION o_noop(); DROP OWNED BY {owner}; DROP ROLE {owner}");
        }
    }

    [Fact]
    public async Task Swaps_and_carries_over_keys_views_sequences_grants_comments_triggers_and_policies()
    {
        var (facts, shadow) = await ShadowAndCopyAsync("t", "ALTER COLUMN a TYPE bigint");
        uint oldOid = uint.Parse(await ScalarAsync(_connectionString, "SELECT 't'::regclass::oid"), System.Globalization.CultureInfo.InvariantCulture);

        var cutover = new PostgresCutover(_connectionString, facts, shadow, NoDrain, new CutoverOptions());
        CutoverResult result = await cutover.RunAsync(CancellationToken.None);

        Assert.Equal(1, result.Attempts);
        Assert.InRange(result.WritesBlocked, TimeSpan.Zero, TimeSpan.FromSeconds(3));
        // Where the hold went: consecutive parts of it, so never more than it in all.
        Assert.NotNull(result.LockWait);
        Assert.Equal(["drain: returned", "lock the shadow, read the catalog", "renames and carry-overs", "dependent views", "commit"],
            result.Steps.Select(s => s.Name.Split(" (")[0]));
        Assert.All(result.Steps, s => Assert.True(s.Elapsed >= TimeSpan.Zero, s.Name));
        Assert.InRange(result.Steps.Aggregate(TimeSpan.Zero, (sum, s) => sum + s.Elapsed), TimeSpan.Zero, result.WritesBlocked);
        Assert.Contains("dependent views (2)", result.Steps.Select(s => s.Name));
        Assert.Empty(cutover.Notes);
        Assert.Equal("bigint", await ScalarAsync(_connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'a'"));
        Assert.Equal(oldOid.ToString(System.Globalization.CultureInfo.InvariantCulture), await ScalarAsync(_connectionString, "SELECT 't_osc_old'::regclass::oid"));
        Assert.Equal("2000", await ScalarAsync(_connectionString, "SELECT count(*) FROM t"));

        // Names: indexes and constraints as they were; the serial's sequence belongs to the new table and continues.
        Assert.Equal("t_by_a,t_pkey", await ScalarAsync(_connectionString, "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 't'::regclass"));
        Assert.Equal("public.t_id_seq", await ScalarAsync(_connectionString, "SELECT pg_get_serial_sequence('t', 'id')"));
        Assert.Equal("2001", await ScalarAsync(_connectionString, "INSERT INTO t (a, p) VALUES (1, 1) RETURNING id"));

        // The trigger fired on that insert; grants, comments, policies and options are those of the original.
        Assert.Equal("from trigger", await ScalarAsync(_connectionString, "SELECT b FROM t WHERE id = 2001"));
        Assert.Equal("True", await ScalarAsync(_connectionString, $"SELECT has_table_privilege('{_role}', 't', 'SELECT')"));
        Assert.Equal("the table|the b column", await ScalarAsync(_connectionString, "SELECT obj_description('t'::regclass, 'pg_class') || '|' || col_description('t'::regclass, 3)"));
        Assert.Equal("true|t_nonnegative", await ScalarAsync(_connectionString, "SELECT relrowsecurity || '|' || (SELECT polname FROM pg_policy WHERE polrelid = c.oid) FROM pg_class c WHERE oid = 't'::regclass"));
        Assert.Equal("{fillfactor=80}", await ScalarAsync(_connectionString, "SELECT reloptions::text FROM pg_class WHERE oid = 't'::regclass"));

        // Views read the new table: the one whose column changed type was recreated with its grant.
        Assert.Equal("bigint", await ScalarAsync(_connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'v'::regclass AND attname = 'a'"));
        Assert.Equal("True", await ScalarAsync(_connectionString, $"SELECT has_table_privilege('{_role}', 'v', 'SELECT')"));
        Assert.Equal("2001|2001", await ScalarAsync(_connectionString, "SELECT (SELECT max(id) FROM v) || '|' || (SELECT max(id) FROM v_b)"));

        // Foreign keys: both directions on the new table, validated; none left on the old one.
        Assert.Equal("child_t_fk:t:true,t_p_fkey:parent:true", await ScalarAsync(_connectionString,
            "SELECT string_agg(conname || ':' || confrelid::regclass::text || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f' AND (conrelid = 't'::regclass OR confrelid = 't'::regclass)"));
        Assert.Equal("0", await ScalarAsync(_connectionString, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND (conrelid = 't_osc_old'::regclass OR confrelid = 't_osc_old'::regclass)"));
        await ExecuteAsync(_connectionString, "DELETE FROM t WHERE id = 7");
        Assert.Equal("0", await ScalarAsync(_connectionString, "SELECT count(*) FROM child WHERE t_id = 7"));
        await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(_connectionString, "INSERT INTO child VALUES (999, 999999)"));
    }

    [Theory]
    [InlineData("", "ALTER COLUMN v TYPE bigint", true, "{autovacuum_enabled=false}", "")]
    [InlineData("fillfactor = 70, autovacuum_enabled = false", "ALTER COLUMN v TYPE bigint", true, "{autovacuum_enabled=false}", "{fillfactor=70,autovacuum_enabled=false}")]
    [InlineData("", "ALTER COLUMN v TYPE bigint, SET (autovacuum_enabled = true)", false, "{autovacuum_enabled=true}", "{autovacuum_enabled=true}")]
    public async Task Autovacuum_is_off_on_the_shadow_until_the_swap_then_as_the_original_or_the_alter_has_it(
        string originalOptions, string alter, bool paused, string shadowOptions, string afterSwap)
    {
        await ExecuteAsync(_connectionString, "CREATE TABLE av (id int PRIMARY KEY, v int); INSERT INTO av SELECT g, g FROM generate_series(1, 500) g;"
                                              + (originalOptions == "" ? "" : $"ALTER TABLE av SET ({originalOptions});"));
        var (facts, shadow) = await ShadowAndCopyAsync("av", alter);
        Assert.Equal(paused, shadow.AutovacuumPaused);
        Assert.Equal(shadowOptions, await ScalarAsync(_connectionString, "SELECT reloptions::text FROM pg_class WHERE oid = 'av_osc_new'::regclass"));

        // A resumed run reads it back from the recorded layout.
        await using (var connection = new NpgsqlConnection(_connectionString))
        {
            await connection.OpenAsync();
            var statement = Core.Sql.AlterStatement.Parse(alter, facts.Table, Core.Sql.SqlDialect.Postgres);
            PostgresShadowTable reopened = await PostgresShadowTable.OpenAsync(connection, facts, statement, shadow.Layout(), CancellationToken.None);
            Assert.Equal(paused, reopened.AutovacuumPaused);
        }

        await new PostgresCutover(_connectionString, facts, shadow, NoDrain, new CutoverOptions()).RunAsync(CancellationToken.None);

        Assert.Equal(afterSwap, await ScalarAsync(_connectionString, "SELECT coalesce(reloptions::text, '') FROM pg_class WHERE oid = 'av'::regclass"));
    }

    [Fact]
    public async Task An_identity_column_continues_past_the_highest_value_under_its_own_name()
    {
        await ExecuteAsync(_connectionString, """
            CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int);
            INSERT INTO ident (v) SELECT generate_series(1, 300);
            DELETE FROM ident WHERE id > 250;
            """);
        var (facts, shadow) = await ShadowAndCopyAsync("ident", "ALTER COLUMN v TYPE bigint");

        await new PostgresCutover(_connectionString, facts, shadow, NoDrain, new CutoverOptions()).RunAsync(CancellationToken.None);

        Assert.Equal("public.ident_id_seq", await ScalarAsync(_connectionString, "SELECT pg_get_serial_sequence('ident', 'id')"));
        Assert.Equal("301", await ScalarAsync(_connectionString, "INSERT INTO ident (v) VALUES (1) RETURNING id"));
    }

    [Fact]
    public async Task Swaps_a_table_outside_the_search_path_with_a_view_in_another_schema()
    {
        await ExecuteAsync(_connectionString, """
            CREATE SCHEMA app;
            CREATE TABLE app."Orders" (id int PRIMARY KEY, total int);
            INSERT INTO app."Orders" SELECT g, g * 10 FROM generate_series(1, 100) g;
            CREATE VIEW public.order_totals AS SELECT sum(total) AS total FROM app."Orders";
            """);
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        var name = new Core.Sql.TableName("app", "Orders");
        var statement = Core.Sql.AlterStatement.Parse("ALTER COLUMN total TYPE bigint", name, Core.Sql.SqlDialect.Postgres);
        PostgresTableFacts facts = await new PostgresInspector(connection).InspectAsync(name, statement, CancellationToken.None);
        PostgresShadowTable shadow = await PostgresShadowTable.CreateAsync(connection, facts, statement, CancellationToken.None);
        await new PostgresCopySource(_connectionString, facts, shadow).CopyRangeAsync(new KeyRange(0, null, null), CancellationToken.None);

        await new PostgresCutover(_connectionString, facts, shadow, NoDrain, new CutoverOptions()).RunAsync(CancellationToken.None);

        Assert.Equal("bigint", await ScalarAsync(_connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.\"Orders\"'::regclass AND attname = 'total'"));
        await ExecuteAsync(_connectionString, "INSERT INTO app.\"Orders\" VALUES (101, 5)");
        Assert.Equal("50505", await ScalarAsync(_connectionString, "SELECT total FROM public.order_totals"));
        Assert.Equal("app.\"Orders_pkey\"", await ScalarAsync(_connectionString, "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'app.\"Orders\"'::regclass"));
    }

    [Fact]
    public async Task A_long_transaction_on_the_table_makes_it_retry_then_give_up_cleanly_and_never_stalls_the_application_long()
    {
        var (facts, shadow) = await ShadowAndCopyAsync("t", "ALTER COLUMN a TYPE bigint");
        await using var longTransaction = new NpgsqlConnection(_connectionString);
        await longTransaction.OpenAsync();
        await using var transaction = await longTransaction.BeginTransactionAsync();
        await new NpgsqlCommand("SELECT count(*) FROM t /* the long report */", longTransaction, transaction).ExecuteScalarAsync();

        using var stop = new CancellationTokenSource();
        Task<TimeSpan> application = PgSql.SlowestReadAsync(_connectionString, stop.Token);
        var options = new CutoverOptions { LockTimeout = TimeSpan.FromMilliseconds(400), Attempts = 4 };
        var error = await Assert.ThrowsAsync<OscException>(() => new PostgresCutover(_connectionString, facts, shadow, NoDrain, options).RunAsync(CancellationToken.None));
        await stop.CancelAsync();
        TimeSpan slowest = await application;

        Assert.Contains("did not succeed in 4 attempts", error.Message, StringComparison.Ordinal);
        Assert.Contains("could not lock public.t within 400 ms; blocked by pid", error.Message, StringComparison.Ordinal);
        Assert.Contains("the long report", error.Message, StringComparison.Ordinal);
        // Queued behind the lock request (so the measure means something), but never for longer than about its timeout,
        // although the long transaction holds the table for the whole test.
        Assert.InRange(slowest, TimeSpan.FromMilliseconds(150), TimeSpan.FromMilliseconds(1400));
        Assert.Equal("integer", await ScalarAsync(_connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'a'"));
        Assert.Equal("t,t_osc_new", await ScalarAsync(_connectionString, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname IN ('t', 't_osc_new', 't_osc_old')"));
        await transaction.RollbackAsync();
    }

    [Fact]
    public async Task A_replay_that_does_not_drain_in_time_releases_the_lock_and_leaves_the_original()
    {
        var (facts, shadow) = await ShadowAndCopyAsync("t", "ADD COLUMN x int");
        var options = new CutoverOptions { DrainTimeout = TimeSpan.FromMilliseconds(200), Attempts = 2 };
        int drains = 0;

        // The catch-up before the lock gets there; the drain under the lock never does.
        var error = await Assert.ThrowsAsync<OscException>(() => new PostgresCutover(_connectionString, facts, shadow,
            async (_, ct) =>
            {
                if (++drains % 2 == 0)
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
            }, options).RunAsync(CancellationToken.None));

        Assert.Equal(4, drains); // per attempt: the bounded catch-up before the lock, then the drain under it
        Assert.Contains("the replay did not reach", error.Message, StringComparison.Ordinal);
        Assert.Equal("2000", await ScalarAsync(_connectionString, "SELECT count(*) FROM t"));
        Assert.Equal("", await ScalarAsync(_connectionString, "SELECT relname FROM pg_class WHERE relname = 't_osc_old'"));
    }

    [Fact]
    public async Task A_replay_that_does_not_catch_up_before_the_lock_never_locks_the_table()
    {
        var (facts, shadow) = await ShadowAndCopyAsync("t", "ADD COLUMN x int");
        var options = new CutoverOptions { DrainTimeout = TimeSpan.FromMilliseconds(200), Attempts = 2 };
        int drains = 0;

        var error = await Assert.ThrowsAsync<OscException>(() => new PostgresCutover(_connectionString, facts, shadow,
            async (_, ct) => { drains++; await Task.Delay(Timeout.Infinite, ct); }, options).RunAsync(CancellationToken.None));

        Assert.Equal(2, drains); // one catch-up per attempt, and no drain under a lock
        Assert.Contains("before the lock; the table was not locked", error.Message, StringComparison.Ordinal);
        Assert.Equal("2000", await ScalarAsync(_connectionString, "SELECT count(*) FROM t"));
    }

    private static Task NoDrain(ReplicationPosition position, CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task<(PostgresTableFacts, PostgresShadowTable)> ShadowAndCopyAsync(string table, string alter)
    {
        var (facts, shadow, _) = await ShadowAsync(_connectionString, table, alter);
        var source = new PostgresCopySource(_connectionString, facts, shadow);
        await source.CopyRangeAsync(new KeyRange(0, null, null), CancellationToken.None);
        return (facts, shadow);
    }
}
