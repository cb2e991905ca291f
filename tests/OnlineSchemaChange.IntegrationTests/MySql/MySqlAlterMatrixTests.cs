using System.Text.Json;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using Xunit.Abstractions;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// ALTERs of every common kind through `osc alter --execute` while an application writes. The load runs from
/// before the start until the copy and replay are done (the swap is postponed until it stops), so the original's
/// final state is the kept `t_osc_old`; the new table must hold exactly that content in the new shape, checked by
/// an independent SQL checksum of each side.
/// </summary>
[Collection("servers")]
public sealed class MySqlAlterMatrixTests(ServersFixture servers, ITestOutputHelper output)
{
    /// <summary>
    /// One ALTER: the table's extra columns (after `id` and `n`, which the load writes), how the rows fill them, the
    /// ALTER, the row expression over the original and over the new table that must agree, and an optional check on the
    /// new table that must return 1.
    /// </summary>
    public sealed record AlterCase(string Name, string Columns, string Fill, string Alter, string OldRow, string NewRow, string? Check = null, int Rows = 2000)
    {
        public override string ToString() => Name;
    }

    public static TheoryData<AlterCase> Cases => new()
    {
        new AlterCase("add column", "c VARCHAR(20) DEFAULT 'x'", "CONCAT('c', seq)", "ADD COLUMN d INT NOT NULL DEFAULT 5",
            "CONCAT_WS('|', id, n, c, 5)", "CONCAT_WS('|', id, n, c, d)"),
        new AlterCase("drop column", "c VARCHAR(20), d INT", "CONCAT('c', seq), seq", "DROP COLUMN d", "CONCAT_WS('|', id, n, c)", "CONCAT_WS('|', id, n, c)"),
        new AlterCase("rename with CHANGE", "c VARCHAR(20)", "CONCAT('c', seq)", "CHANGE c c2 VARCHAR(20)", "CONCAT_WS('|', id, n, c)", "CONCAT_WS('|', id, n, c2)"),
        new AlterCase("RENAME COLUMN", "c VARCHAR(20), d INT", "CONCAT('c', seq), seq", "RENAME COLUMN c TO c3, MODIFY d BIGINT",
            "CONCAT_WS('|', id, n, c, d)", "CONCAT_WS('|', id, n, c3, d)"),
        new AlterCase("widen", "s SMALLINT, v VARCHAR(10)", "seq % 30000, CONCAT('v', seq)", "MODIFY s BIGINT, MODIFY v VARCHAR(100)",
            "CONCAT_WS('|', id, n, s, v)", "CONCAT_WS('|', id, n, s, v)",
            "SELECT DATA_TYPE = 'bigint' FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 's'"),
        new AlterCase("narrow with fitting data", "b BIGINT, v VARCHAR(100)", "seq, CONCAT('v', seq)", "MODIFY b INT, MODIFY v VARCHAR(20)",
            "CONCAT_WS('|', id, n, b, v)", "CONCAT_WS('|', id, n, b, v)"),
        new AlterCase("add index", "c VARCHAR(20)", "CONCAT('c', seq % 50)", "ADD INDEX ix_c (c)", "CONCAT_WS('|', id, n, c)", "CONCAT_WS('|', id, n, c)",
            "SELECT COUNT(*) = 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'ix_c'"),
        new AlterCase("drop index", "c VARCHAR(20), KEY ix_c (c)", "CONCAT('c', seq % 50)", "DROP INDEX ix_c", "CONCAT_WS('|', id, n, c)", "CONCAT_WS('|', id, n, c)",
            "SELECT COUNT(*) = 0 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'ix_c'"),
        new AlterCase("add unique key without duplicates", "u INT", "seq", "ADD UNIQUE KEY uq (u)", "CONCAT_WS('|', id, n, u)", "CONCAT_WS('|', id, n, u)",
            "SELECT COUNT(*) = 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'uq'"),
        new AlterCase("change the primary key", "code CHAR(36) NOT NULL DEFAULT (UUID())", "UUID()", "DROP PRIMARY KEY, ADD PRIMARY KEY (code), ADD UNIQUE KEY uq_id (id)",
            "CONCAT_WS('|', id, n, code)", "CONCAT_WS('|', id, n, code)",
            "SELECT GROUP_CONCAT(COLUMN_NAME) = 'code' FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'PRIMARY'"),
        new AlterCase("composite primary key over a written column", "c VARCHAR(20)", "CONCAT('c', seq)", "DROP PRIMARY KEY, ADD PRIMARY KEY (id, n)",
            "CONCAT_WS('|', id, n, c)", "CONCAT_WS('|', id, n, c)"),
        new AlterCase("convert charset", "c VARCHAR(20) CHARACTER SET latin1", "CONCAT('caf', CHAR(233 USING latin1), seq)", "CONVERT TO CHARACTER SET utf8mb4",
            "CONCAT_WS('|', id, n, CONVERT(c USING utf8mb4))", "CONCAT_WS('|', id, n, c)",
            "SELECT CHARACTER_SET_NAME = 'utf8mb4' FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'c'"),
        new AlterCase("JSON", "j JSON", "JSON_OBJECT('a', seq, 'b', CONCAT('x', seq), 'c', JSON_ARRAY(1, 2.5, NULL))", "ADD COLUMN z INT NULL",
            "CONCAT_WS('|', id, n, j)", "CONCAT_WS('|', id, n, j)"),
        new AlterCase("BLOB", "bl BLOB", "UNHEX(SHA2(seq, 256))", "ADD COLUMN z INT NULL", "CONCAT_WS('|', id, n, HEX(bl))", "CONCAT_WS('|', id, n, HEX(bl))"),
        new AlterCase("generated columns are recomputed", "g INT AS (n * 2) STORED, gv INT AS (n + 1) VIRTUAL, c INT", "seq", "MODIFY n BIGINT NOT NULL DEFAULT 0, ADD COLUMN g3 INT AS (n * 3) STORED",
            "CONCAT_WS('|', id, n, g, gv, c, n * 3)", "CONCAT_WS('|', id, n, g, gv, c, g3)", "SELECT COUNT(*) = 0 FROM t WHERE g <> n * 2 OR gv <> n + 1 OR g3 <> n * 3"),
        new AlterCase("ENUM and SET", "e ENUM('a','b','c') DEFAULT 'a', st SET('x','y','z')", "ELT(seq % 3 + 1, 'a', 'b', 'c'), ELT(seq % 3 + 1, 'x', 'x,y', 'y,z')",
            "MODIFY e ENUM('a','b','c','d') DEFAULT 'a'", "CONCAT_WS('|', id, n, e, st)", "CONCAT_WS('|', id, n, e, st)"),
        new AlterCase("DECIMAL", "dc DECIMAL(12,4)", "seq / 7", "MODIFY dc DECIMAL(14,4)", "CONCAT_WS('|', id, n, dc)", "CONCAT_WS('|', id, n, dc)"),
        new AlterCase("DATETIME(6)", "dt DATETIME(6)", "TIMESTAMP('2020-01-01 00:00:00') + INTERVAL seq SECOND + INTERVAL seq MICROSECOND", "ADD COLUMN z INT NULL",
            "CONCAT_WS('|', id, n, dt)", "CONCAT_WS('|', id, n, dt)"),
        new AlterCase("utf8mb4 emoji", "em VARCHAR(20) CHARACTER SET utf8mb4", "CONCAT(CONVERT(X'F09F9880' USING utf8mb4), seq, CONVERT(X'F09F8E89' USING utf8mb4))",
            "MODIFY em VARCHAR(40) CHARACTER SET utf8mb4", "CONCAT_WS('|', id, n, HEX(em))", "CONCAT_WS('|', id, n, HEX(em))"),
        new AlterCase("empty table", "c VARCHAR(20)", "'c'", "ADD COLUMN d INT NOT NULL DEFAULT 5", "CONCAT_WS('|', id, n, c, 5)", "CONCAT_WS('|', id, n, c, d)", Rows: 0),
        new AlterCase("1,000,000 rows", "c VARCHAR(20), KEY ix_c (c)", "CONCAT('c', seq % 1000)", "MODIFY n BIGINT NOT NULL DEFAULT 0, ADD COLUMN d INT NOT NULL DEFAULT 5",
            "CONCAT_WS('|', id, n, c, 5)", "CONCAT_WS('|', id, n, c, d)", Rows: 1_000_000),
        new AlterCase("one row", "c VARCHAR(20)", "'c'", "ADD COLUMN d INT NOT NULL DEFAULT 5", "CONCAT_WS('|', id, n, c, 5)", "CONCAT_WS('|', id, n, c, d)", Rows: 1),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task The_new_table_holds_the_original_s_content_in_the_new_shape(AlterCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        string names = string.Join(", ", TopLevelParts(c.Columns).Where(p => !p.StartsWith("KEY ", StringComparison.Ordinal) && !p.Contains(" AS (", StringComparison.Ordinal))
            .Select(p => p.Split(' ')[0]));
        string fill = c.Rows == 0 ? "" : $"INSERT INTO t (id, n, {names}) SELECT seq, seq % 10, {c.Fill} FROM seq_1_to_{c.Rows};";
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "matrix", $"CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL DEFAULT 0, {c.Columns}); {fill}");
        using var flag = new FlagFile("matrix");
        using var stop = new CancellationTokenSource();
        var counter = new WriteCounter();
        Task<int> load = LoadAsync(db.ConnectionString, Math.Max(c.Rows, 1), counter, stop.Token);
        try
        {
            while (counter.Writes < 10)
            {
                await Task.Delay(10);
            }

            int atStart = counter.Writes;
            // Rebuilt even where the ALTER is a catalog change on MariaDB: the matrix is about the copy's column mapping.
            LiveOscRun run = LiveOscRun.Start("alter", db.Uri, "--table", "t", "--alter", c.Alter, "--execute", "--json", "--no-replica-discovery", "--native", "off",
                "--chunk-time-millis", "20", "--postpone-cut-over-flag-file", flag.Path);
            await run.WaitForEventAsync(e => e.TryGetProperty("state", out JsonElement s) && s.GetString()!.StartsWith("postponed", StringComparison.Ordinal),
                TimeSpan.FromSeconds(90), "the copy and replay to finish");
            int writes = counter.Writes - atStart;
            await stop.CancelAsync();
            await load;
            flag.Lift();
            OscRunner.Result result = await run.Completion.WaitAsync(TimeSpan.FromSeconds(90));
            output.WriteLine($"{c.Name}: {writes} writes during the migration");
            Assert.True(result.ExitCode == 0, result.Stderr);
            Assert.Equal("t_osc_old", await db.OscTablesAsync());

            string expected = await ScalarAsync(db.ConnectionString, $"SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32({c.OldRow})), 0), ':', COALESCE(BIT_XOR(CRC32({c.OldRow})), 0)) FROM t_osc_old");
            string actual = await ScalarAsync(db.ConnectionString, $"SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32({c.NewRow})), 0), ':', COALESCE(BIT_XOR(CRC32({c.NewRow})), 0)) FROM t");
            Assert.Equal(expected, actual);
            Assert.True(writes > 0, "the application wrote during the migration");
            if (c.Check is not null)
            {
                Assert.Equal("1", await ScalarAsync(db.ConnectionString, c.Check));
            }
        }
        finally
        {
            await stop.CancelAsync();
            await load;
        }
    }

    [Fact]
    public async Task A_unique_key_over_duplicates_under_writes_stops_before_the_swap_and_loses_no_row()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "matrix_dup", """
            CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL DEFAULT 0, u INT);
            INSERT INTO t (id, n, u) SELECT seq, seq % 10, IF(seq % 500 = 0, 1, seq) FROM seq_1_to_2000;
            """);
        using var stop = new CancellationTokenSource();
        var counter = new WriteCounter();
        Task<int> load = LoadAsync(db.ConnectionString, 2000, counter, stop.Token);
        OscRunner.Result result = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "ADD UNIQUE KEY uq (u)", "--execute",
            "--no-replica-discovery", "--chunk-time-millis", "20");
        await stop.CancelAsync();
        await load;

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Verification failed", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", await db.OscTablesAsync());
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'uq'"));
        Assert.Equal((2000 + counter.Inserted - counter.Deleted).ToString(System.Globalization.CultureInfo.InvariantCulture), await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM t"));
        Assert.True(counter.Writes > 0);
    }

    /// <summary>A column list split at its commas outside parentheses.</summary>
    private static IEnumerable<string> TopLevelParts(string list)
    {
        int depth = 0, start = 0;
        for (int i = 0; i <= list.Length; i++)
        {
            if (i == list.Length || (list[i] == ',' && depth == 0))
            {
                yield return list[start..i].Trim();
                start = i + 1;
            }
            else if (list[i] == '(')
            {
                depth++;
            }
            else if (list[i] == ')')
            {
                depth--;
            }
        }
    }

    /// <summary>Inserts, updates of n and deletes by id, as fast as one connection goes; failures (deadlocks) are retried by the next write.</summary>
    private sealed class WriteCounter
    {
        private int _writes;
        private int _inserted;
        private int _deleted;

        public int Writes => Volatile.Read(ref _writes);

        public int Inserted => Volatile.Read(ref _inserted);

        public int Deleted => Volatile.Read(ref _deleted);

        public void Add(string sql)
        {
            Interlocked.Increment(ref _writes);
            if (sql.StartsWith("INSERT", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _inserted);
            }
            else if (sql.StartsWith("DELETE", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _deleted);
            }
        }
    }

    private static async Task<int> LoadAsync(string connectionString, int rows, WriteCounter counter, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var random = new Random(rows);
        int writes = 0;
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        while (!cancellationToken.IsCancellationRequested)
        {
            int id = random.Next(1, rows + 1);
            string sql = random.Next(4) switch
            {
                0 => "INSERT INTO t (n) VALUES (1)",
                1 => $"DELETE FROM t WHERE id = {id}",
                _ => $"UPDATE t SET n = n + 1 WHERE id = {id}",
            };
            try
            {
                await using var command = new MySqlCommand(sql, connection);
                if (await command.ExecuteNonQueryAsync(CancellationToken.None) > 0)
                {
                    writes++;
                    counter.Add(sql);
                }
            }
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.LockDeadlock or MySqlErrorCode.LockWaitTimeout)
            {
                // An application retries; the next write will do.
            }

            await Task.Delay(2, CancellationToken.None);
        }

        return writes;
    }
}
