using Npgsql;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.Postgres.Copy;
using OnlineSchemaChange.Postgres.Migration;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgEngineSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>The shadow table (LIKE plus the ALTER, columns matched by attribute number) and the keyset copy into it, on a real PostgreSQL 15.</summary>
[Collection("servers")]
public sealed class PostgresShadowCopyTests(ServersFixture servers) : IAsyncLifetime
{
    private const string Setup = """
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE t (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            s serial,
            a int NOT NULL,
            dropme int,
            b text,
            ts timestamp,
            g int GENERATED ALWAYS AS (d * 2) STORED,
            m mood,
            u uuid,
            n numeric(12,3),
            arr int[],
            j jsonb,
            bin bytea,
            d int DEFAULT 5);
        ALTER TABLE t DROP COLUMN dropme;
        CREATE INDEX t_a_idx_custom ON t (a);
        INSERT INTO t (a, b, ts, m, u, n, arr, j, bin)
        SELECT g % 50, CASE WHEN g % 7 = 0 THEN NULL ELSE 'row ' || g END, timestamp '2024-01-01' + g * interval '1 minute',
               (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, md5(g::text)::uuid, g / 8.0, ARRAY[g, g + 1], jsonb_build_object('g', g, 'tag', 'x' || g),
               decode(lpad(to_hex(g), 8, '0'), 'hex')
        FROM generate_series(1, 3000) g;
        """;

    private string _connectionString = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewPostgresDatabaseAsync("shadow");
        await ExecuteAsync(_connectionString, Setup);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Theory]
    [InlineData("ADD COLUMN x int DEFAULT 7", "x", "integer")]
    [InlineData("DROP COLUMN b", null, null)]
    [InlineData("ALTER COLUMN a TYPE bigint", "a", "bigint")]
    [InlineData("ALTER COLUMN b TYPE varchar(20)", "b", "character varying(20)")]
    [InlineData("ALTER COLUMN ts TYPE timestamptz", "ts", "timestamp with time zone")]
    [InlineData("ALTER COLUMN b TYPE int USING length(b)", "b", "integer")]
    [InlineData("ALTER COLUMN n TYPE numeric(20,6)", "n", "numeric(20,6)")]
    [InlineData("ALTER COLUMN a SET NOT NULL, ALTER COLUMN u SET DEFAULT gen_random_uuid()", "u", "uuid")]
    [InlineData("ADD CONSTRAINT ck_a CHECK (a >= 0)", "a", "integer")]
    [InlineData("DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (id, a)", "id", "bigint")]
    [InlineData("ALTER COLUMN m TYPE text", "m", "text")]
    [InlineData("ALTER COLUMN j TYPE json", "j", "json")]
    [InlineData("ALTER COLUMN arr TYPE bigint[]", "arr", "bigint[]")]
    [InlineData("ALTER COLUMN d DROP DEFAULT, ADD COLUMN created timestamptz NOT NULL DEFAULT now()", "created", "timestamp with time zone")]
    public async Task The_shadow_takes_the_alter_and_the_copy_fills_it_faithfully(string alter, string? column, string? type)
    {
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "t", alter);

        if (column is not null)
        {
            Assert.Equal(type, shadow.ColumnTypes[column]);
        }

        Assert.DoesNotContain("g", shadow.Mapping.TargetColumns); // generated: the shadow computes it
        await CopyAllAsync(facts, shadow, rowsPerChunk: 700);
        Assert.Equal("0", await DifferencesAsync(_connectionString, facts, shadow));
        Assert.Equal("3000", await ScalarAsync(_connectionString, "SELECT count(*) FROM t_osc_new WHERE g = d * 2"));
        await using (var connection = new NpgsqlConnection(_connectionString))
        {
            await connection.OpenAsync();
            await shadow.DropAsync(connection);
        }

        Assert.Equal("", await OurRelationsAsync(_connectionString));
    }

    [Fact]
    public async Task A_rename_maps_by_attribute_number_and_a_dropped_then_re_added_name_is_a_new_column()
    {
        var (_, renamed, _) = await ShadowAsync(_connectionString, "t", "RENAME COLUMN b TO b2");
        Assert.Contains(("b", "b2"), renamed.Mapping.Pairs.Select(p => (p.Source, p.Target)));
        await DropShadowAsync();

        var (facts, readded, _) = await ShadowAsync(_connectionString, "t", "DROP COLUMN b, ADD COLUMN b text DEFAULT 'new'");
        Assert.DoesNotContain("b", readded.Mapping.SourceColumns);
        Assert.Equal(["b"], readded.DroppedColumns(facts));
        await CopyAllAsync(facts, readded, rowsPerChunk: 1000);
        Assert.Equal("3000", await ScalarAsync(_connectionString, "SELECT count(*) FROM t_osc_new WHERE b = 'new'"));
    }

    [Fact]
    public async Task Identity_and_serial_values_are_kept_and_the_key_is_mapped()
    {
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "t", "ALTER COLUMN a TYPE bigint");
        await CopyAllAsync(facts, shadow, rowsPerChunk: 500);

        Assert.Equal(["id"], shadow.KeyInShadow);
        Assert.Equal(await ScalarAsync(_connectionString, "SELECT sum(id) || ':' || sum(s) FROM t"), await ScalarAsync(_connectionString, "SELECT sum(id) || ':' || sum(s) FROM t_osc_new"));
        Assert.Equal("t_a_idx_custom", shadow.IndexNames.Single(p => p.Value == "t_a_idx_custom").Value);
    }

    [Fact]
    public async Task Plain_indexes_and_unique_keys_the_original_enforces_are_built_after_the_copy_and_a_new_unique_key_stays_throughout()
    {
        await ExecuteAsync(_connectionString, "CREATE UNIQUE INDEX t_u_unique ON t (u)");
        // The ALTER's own unique key may meet duplicates: it stays, so that verification finds the rows it made the copy skip.
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "t", "ADD COLUMN x int, ADD CONSTRAINT t_x_unique UNIQUE (x)");
        const string Indexes = "SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 't_osc_new'::regclass";

        Assert.Equal(["t_osc_new_a_idx", "t_osc_new_u_idx"], shadow.DeferredIndexes.Select(d => d.Name));
        Assert.True(shadow.DefersUniqueKeys);
        Assert.Equal("t_osc_new_pkey,t_x_unique", await ScalarAsync(_connectionString, Indexes));

        await CopyAllAsync(facts, shadow, rowsPerChunk: 1000);
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await shadow.BuildDeferredIndexesAsync(connection, CancellationToken.None);
        await shadow.BuildDeferredIndexesAsync(connection, CancellationToken.None); // again: a no-op

        Assert.Equal("t_osc_new_a_idx,t_osc_new_pkey,t_osc_new_u_idx,t_x_unique", await ScalarAsync(_connectionString, Indexes));
        Assert.Equal("True", await ScalarAsync(_connectionString, "SELECT indisunique FROM pg_index WHERE indexrelid = 't_osc_new_u_idx'::regclass"));
        Assert.Equal("t_a_idx_custom", shadow.IndexNames["t_osc_new_a_idx"]);
    }

    [Theory]
    [InlineData("ADD COLUMN z int NOT NULL", "NOT NULL without a default")]
    [InlineData("DROP COLUMN id", "drops a column of the key")]
    [InlineData("ALTER COLUMN nosuch TYPE int", "The server rejects the ALTER")]
    public async Task Refuses_an_alter_the_copy_cannot_serve_and_removes_the_shadow(string alter, string problem)
    {
        var error = await Assert.ThrowsAsync<OscException>(() => ShadowAsync(_connectionString, "t", alter));

        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
        Assert.Equal("", await OurRelationsAsync(_connectionString));
    }

    [Fact]
    public async Task A_value_that_does_not_fit_the_new_type_stops_the_copy_rather_than_being_cut()
    {
        await ExecuteAsync(_connectionString, "UPDATE t SET b = repeat('x', 30) WHERE id = 10");
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "t", "ALTER COLUMN b TYPE varchar(20)");

        var error = await Assert.ThrowsAsync<OnlineSchemaChange.Core.Migration.DataDoesNotFitException>(() => CopyAllAsync(facts, shadow, rowsPerChunk: 1000));

        Assert.Equal(PostgresErrorCodes.StringDataRightTruncation, Assert.IsType<PostgresException>(error.InnerException).SqlState);
        Assert.Contains("does not fit the data", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Copies_a_composite_key_table_in_chunks()
    {
        await ExecuteAsync(_connectionString, """
            CREATE TABLE c (tenant text NOT NULL, id int NOT NULL, v int, PRIMARY KEY (tenant, id));
            INSERT INTO c SELECT 't' || (g % 7), g, g * 10 FROM generate_series(1, 5000) g;
            """);
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "c", "ALTER COLUMN v TYPE bigint");

        int chunks = await CopyAllAsync(facts, shadow, rowsPerChunk: 300);

        Assert.Equal(17, chunks); // 16 bounded ranges of 300 and the open-ended rest
        Assert.Equal("0", await DifferencesAsync(_connectionString, facts, shadow));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_dense_integer_key_is_cut_by_arithmetic_once_the_table_has_a_row_estimate(bool analyzed)
    {
        await ExecuteAsync(_connectionString, $"""
            CREATE TABLE w (id bigint PRIMARY KEY, v int NOT NULL);
            INSERT INTO w SELECT g, g FROM generate_series(1, 20000) g WHERE g % 5 <> 0;
            {(analyzed ? "ANALYZE w;" : "")}
            """);
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "w", "ALTER COLUMN v TYPE bigint");
        var source = new PostgresCopySource(_connectionString, facts, shadow);
        var width = new WidthChunkedCopySource(source, source);
        var copier = new KeysetCopier(width, new ChunkSizer(TimeSpan.FromMilliseconds(50), initialRows: 1000, minRows: 1000, maxRows: 1000), null, workers: 2);

        await copier.RunAsync(null, CancellationToken.None);

        // Never analyzed, reltuples is -1: no estimate to trust, so the key is walked.
        Assert.Equal(analyzed, width.CutsByWidth);
        Assert.Equal(16000, copier.RowsCopied);
        Assert.Equal(analyzed ? 20 : 17, copier.ChunksCopied);
        Assert.Equal("0", await DifferencesAsync(_connectionString, facts, shadow));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task Copies_an_empty_and_a_one_row_table(int rows)
    {
        await ExecuteAsync(_connectionString, $"CREATE TABLE e (id int PRIMARY KEY, v text); INSERT INTO e SELECT g, 'v' FROM generate_series(1, {rows}) g");
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "e", "ALTER COLUMN id TYPE bigint");

        Assert.Equal(1, await CopyAllAsync(facts, shadow, rowsPerChunk: 100));
        Assert.Equal(rows.ToString(System.Globalization.CultureInfo.InvariantCulture), await ScalarAsync(_connectionString, "SELECT count(*) FROM e_osc_new"));
    }

    [Fact]
    public async Task The_copy_reads_without_row_locks_and_leaves_rows_the_replay_wrote_alone()
    {
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "t", "ADD COLUMN x int");
        await ExecuteAsync(_connectionString, "INSERT INTO t_osc_new (id, s, a, b) OVERRIDING SYSTEM VALUE VALUES (5, 5, 1, 'written by the replay')");

        // An application transaction holds row locks in the range being copied: the copy must not wait for it.
        await using var application = new NpgsqlConnection(_connectionString);
        await application.OpenAsync();
        await using var transaction = await application.BeginTransactionAsync();
        await new NpgsqlCommand("SELECT * FROM t WHERE id <= 100 FOR UPDATE", application, transaction).ExecuteNonQueryAsync();
        var source = new PostgresCopySource(_connectionString, facts, shadow);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        long covered = await source.CopyRangeAsync(new KeyRange(0, null, new Core.Changes.RowKey(200L)), timeout.Token);
        await transaction.RollbackAsync();

        Assert.Equal(200, covered);
        Assert.Equal("written by the replay", await ScalarAsync(_connectionString, "SELECT b FROM t_osc_new WHERE id = 5"));
        Assert.Equal("200", await ScalarAsync(_connectionString, "SELECT count(*) FROM t_osc_new"));
    }

    private async Task DropShadowAsync() => await ExecuteAsync(_connectionString, "DROP TABLE t_osc_new");

    /// <summary>Runs the copy the way the copier does, chunk end by chunk end; returns the number of chunks.</summary>
    private async Task<int> CopyAllAsync(PostgresTableFacts facts, PostgresShadowTable shadow, int rowsPerChunk)
    {
        var source = new PostgresCopySource(_connectionString, facts, shadow);
        Core.Changes.RowKey? after = null;
        for (int chunk = 0; ; chunk++)
        {
            Core.Changes.RowKey? end = await source.FindChunkEndAsync(after, rowsPerChunk, CancellationToken.None);
            await source.CopyRangeAsync(new KeyRange(chunk, after, end), CancellationToken.None);
            if (end is null)
            {
                return chunk + 1;
            }

            after = end;
        }
    }
}
