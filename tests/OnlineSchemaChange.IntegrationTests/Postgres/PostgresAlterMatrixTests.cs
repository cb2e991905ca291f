using System.Globalization;
using System.Text.Json;
using Npgsql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>
/// ALTERs of every kind the PostgreSQL engine rebuilds, through `osc alter --execute` on a table of every common type
/// while an application writes to all of them. The load runs until the copy and replay are done (the swap is
/// postponed until it stops), so the kept `t_osc_old` is the original's final state. The oracle is the server itself:
/// the same ALTER run natively on `t_osc_old` must give exactly the rows osc's new table holds.
/// </summary>
[Collection("servers")]
public sealed class PostgresAlterMatrixTests(ServersFixture servers, ITestOutputHelper output)
{
    /// <summary>The table, filled with <paramref name="rows"/> rows (one in ten with a TOASTed note among the first 3,000).</summary>
    private static string Setup(int rows) => $$"""
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
            note text,
            d int DEFAULT 5);
        ALTER TABLE t DROP COLUMN dropme;
        ALTER TABLE t ALTER COLUMN note SET STORAGE EXTERNAL;
        INSERT INTO t (a, b, ts, m, u, n, arr, j, bin, note)
        SELECT g % 50, CASE WHEN g % 7 = 0 THEN NULL ELSE 'row ' || g END, timestamp '2024-01-01' + g * interval '1 minute',
               (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, md5(g::text)::uuid, g / 8.0, ARRAY[g, g + 1], jsonb_build_object('g', g, 'tag', 'x' || g),
               decode(lpad(to_hex(g), 8, '0'), 'hex'), CASE WHEN g % 10 = 0 AND g <= 3000 THEN repeat('toast ' || g, 800) END
        FROM generate_series(1, {{rows}}) g;
        """;

    /// <summary>
    /// One ALTER: what osc runs, what the oracle runs natively on the old table (null: the rows do not change), the
    /// columns left out of the comparison (volatile values), the rows kept, and a check on the new table that must be true.
    /// </summary>
    public sealed record AlterCase(string Name, string Alter, string? Oracle, string[] Volatile, int Rows = 3000, string? Check = null)
    {
        public override string ToString() => Name;
    }

    public static TheoryData<AlterCase> Cases => new()
    {
        new AlterCase("int to bigint", "ALTER COLUMN a TYPE bigint", "ALTER COLUMN a TYPE bigint", []),
        new AlterCase("text to varchar(n) with fitting data", "ALTER COLUMN b TYPE varchar(40)", "ALTER COLUMN b TYPE varchar(40)", []),
        new AlterCase("timestamp to timestamptz", "ALTER COLUMN ts TYPE timestamptz", "ALTER COLUMN ts TYPE timestamptz", []),
        new AlterCase("a USING expression", "ALTER COLUMN b TYPE int USING length(b)", "ALTER COLUMN b TYPE int USING length(b)", []),
        new AlterCase("numeric, array and json types", "ALTER COLUMN n TYPE numeric(20,6), ALTER COLUMN arr TYPE bigint[], ALTER COLUMN j TYPE json",
            "ALTER COLUMN n TYPE numeric(20,6), ALTER COLUMN arr TYPE bigint[], ALTER COLUMN j TYPE json", []),
        new AlterCase("enum to text", "ALTER COLUMN m TYPE text", "ALTER COLUMN m TYPE text", []),
        new AlterCase("add column with a volatile default", "ADD COLUMN r double precision NOT NULL DEFAULT random()", null, ["r"],
            Check: "SELECT count(DISTINCT r) > 1 AND count(*) = count(r) FROM t"),
        new AlterCase("drop column", "DROP COLUMN b", "DROP COLUMN b", []),
        new AlterCase("rename column", "RENAME COLUMN b TO b2", "RENAME COLUMN b TO b2", []),
        new AlterCase("set not null", "ALTER COLUMN a SET NOT NULL, ALTER COLUMN ts SET NOT NULL", null, [],
            Check: "SELECT bool_and(attnotnull) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname IN ('a', 'ts')"),
        new AlterCase("add check", "ADD CONSTRAINT ck_a CHECK (a >= 0)", null, [],
            Check: "SELECT convalidated FROM pg_constraint WHERE conrelid = 't'::regclass AND conname = 'ck_a'"),
        new AlterCase("change primary key", "DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (id, a)", null, [],
            Check: "SELECT pg_get_constraintdef(oid) = 'PRIMARY KEY (id, a)' FROM pg_constraint WHERE conrelid = 't'::regclass AND contype = 'p'"),
        new AlterCase("add a generated column", "ADD COLUMN g3 bigint GENERATED ALWAYS AS (a * 3) STORED", "ADD COLUMN g3 bigint GENERATED ALWAYS AS (a * 3) STORED", []),
        new AlterCase("empty table", "ALTER COLUMN a TYPE bigint", "ALTER COLUMN a TYPE bigint", [], Rows: 0),
        new AlterCase("one row", "ALTER COLUMN a TYPE bigint", "ALTER COLUMN a TYPE bigint", [], Rows: 1),
        new AlterCase("1,000,000 rows", "ALTER COLUMN a TYPE bigint, ALTER COLUMN ts TYPE timestamptz", "ALTER COLUMN a TYPE bigint, ALTER COLUMN ts TYPE timestamptz", [],
            Rows: 1_000_000),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task The_new_table_holds_what_the_native_alter_makes_of_the_original_s_final_rows(AlterCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        string connectionString = await servers.NewPostgresDatabaseAsync("matrix");
        await ExecuteAsync(connectionString, Setup(Math.Max(c.Rows, 3000)) + $"DELETE FROM t WHERE id > {c.Rows}; ANALYZE t;");
        using var flag = new FlagFile("pg-matrix");
        using var stop = new CancellationTokenSource();
        var writes = new WriteCount();
        Task load = Task.Run(() => LoadAsync(connectionString, writes, stop.Token));
        try
        {
            while (writes.Value < 10)
            {
                await Task.Delay(10);
            }

            int atStart = writes.Value;
            // Rebuilt even where PostgreSQL has a catalog change or a non-blocking form: the matrix is about the copy and the replay.
            LiveOscRun run = LiveOscRun.Start("alter", OscUri(connectionString), "--table", "t", "--alter", c.Alter, "--execute", "--json", "--native", "off",
                "--chunk-time-millis", "20", "--postpone-cut-over-flag-file", flag.Path);
            await run.WaitForEventAsync(e => e.TryGetProperty("state", out JsonElement s) && s.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
                TimeSpan.FromSeconds(90), "the copy and replay to finish");
            await stop.CancelAsync();
            await load;
            int during = writes.Value - atStart;
            flag.Lift();
            OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(90));
            output.WriteLine($"{c.Name}: {during} writes during the migration");
            Assert.True(result.ExitCode == 0, result.Stderr);
            Assert.True(during > 0, "the application wrote during the migration");
            Assert.Equal("", await LeftoversAsync(connectionString));

            // The oracle: the server's own ALTER of the original's final rows.
            if (c.Oracle is not null)
            {
                await ExecuteAsync(connectionString, $"ALTER TABLE t_osc_old {c.Oracle}");
            }

            string excluded = "{" + string.Join(",", c.Volatile) + "}";
            string columns = await ScalarAsync(connectionString, $"""
                SELECT string_agg(quote_ident(attname) || '::text', ', ' ORDER BY attnum) FROM pg_attribute
                WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> ALL ('{excluded}'::text[])
                """);
            Assert.Equal(await ScalarAsync(connectionString, "SELECT count(*) FROM t_osc_old"), await ScalarAsync(connectionString, "SELECT count(*) FROM t"));
            Assert.Equal("0", await ScalarAsync(connectionString, $"""
                SELECT count(*) FROM ((SELECT {columns} FROM t EXCEPT ALL SELECT {columns} FROM t_osc_old)
                                      UNION ALL (SELECT {columns} FROM t_osc_old EXCEPT ALL SELECT {columns} FROM t)) differing
                """));
            if (c.Check is not null)
            {
                Assert.Equal("True", await ScalarAsync(connectionString, c.Check), StringComparer.OrdinalIgnoreCase);
            }

            // The identity and the serial column carry on past every value the original gave out.
            string next = await ScalarAsync(connectionString, "INSERT INTO t (a, ts) VALUES (1, now()) RETURNING id || ',' || s");
            string[] given = (await ScalarAsync(connectionString, "SELECT coalesce(max(id), 0) || ',' || coalesce(max(s), 0) FROM t_osc_old")).Split(',');
            Assert.True(long.Parse(next.Split(',')[0], CultureInfo.InvariantCulture) > long.Parse(given[0], CultureInfo.InvariantCulture), $"identity {next} after {given[0]}");
            Assert.True(long.Parse(next.Split(',')[1], CultureInfo.InvariantCulture) > long.Parse(given[1], CultureInfo.InvariantCulture), $"serial {next} after {given[1]}");
        }
        finally
        {
            await stop.CancelAsync();
            await load;
        }
    }

    private sealed class WriteCount
    {
        private int _value;

        public int Value => Volatile.Read(ref _value);

        public void Add() => Interlocked.Increment(ref _value);
    }

    /// <summary>Updates of every type (TOASTed values left unsent by most), inserts and deletes, until stopped.</summary>
    private static async Task LoadAsync(string connectionString, WriteCount writes, CancellationToken stop)
    {
        var random = new Random(3);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        while (!stop.IsCancellationRequested)
        {
            long id = 1 + random.Next(3000);
            string sql = random.Next(6) switch
            {
                0 => $"INSERT INTO t (a, b, ts, m, u, n, arr, j, bin, note) VALUES ({random.Next(50)}, 'ins {id}', timestamp '2025-06-01' + {id} * interval '1 second', 'ok', " +
                     $"gen_random_uuid(), {id}.125, ARRAY[{id}], '{{\"ins\": {id}}}', '\\x0102', repeat('new ', {random.Next(2) * 900}))",
                1 => $"DELETE FROM t WHERE id = {id}",
                2 => $"UPDATE t SET b = 'w{id}', ts = ts + interval '1 second', m = 'happy', n = n + 0.5, arr = arr || 7, j = j || '{{\"w\": 1}}', bin = bin || '\\x01'::bytea, u = gen_random_uuid() WHERE id = {id}",
                3 => $"UPDATE t SET note = repeat('grown ', 900) WHERE id = {id}",
                _ => $"UPDATE t SET a = a + 1, d = d + 1 WHERE id = {id}",
            };
            await using var command = new NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync(CancellationToken.None);
            writes.Add();
            await Task.Delay(2, CancellationToken.None);
        }
    }
}
