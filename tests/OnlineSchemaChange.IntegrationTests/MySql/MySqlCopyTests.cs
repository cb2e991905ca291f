using MySqlConnector;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.MySql.Apply;
using OnlineSchemaChange.MySql.Copy;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>The chunked copy and the change writer against a real MariaDB.</summary>
[Collection("servers")]
public sealed class MySqlCopyTests(ServersFixture servers) : IAsyncLifetime
{
    private string _connectionString = "";
    private string _database = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewMySqlDatabaseAsync("copy");
        _database = new MySqlConnectionStringBuilder(_connectionString).Database;
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Copies_every_row_in_parallel_chunks_into_the_new_schema()
    {
        await ExecuteAsync("""
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40) NOT NULL, dropme INT, g INT AS (k * 2) VIRTUAL);
            INSERT INTO t (id, k, c, dropme) SELECT seq * 3, seq % 1000, CONCAT('row-', seq), seq FROM seq_1_to_20000;
            CREATE TABLE t_osc_new LIKE t;
            ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL, ADD COLUMN extra INT DEFAULT 7, DROP COLUMN dropme, RENAME COLUMN c TO c2;
            """);
        var (copier, _) = await CopierAsync("t", "t_osc_new", ["id"], new Dictionary<string, string> { ["c"] = "c2" }, workers: 4);

        await copier.RunAsync(null, CancellationToken.None);

        Assert.True(copier.Finished);
        Assert.Equal(20000, copier.RowsCopied);
        Assert.True(copier.ChunksCopied > 4, $"{copier.ChunksCopied} chunks");
        Assert.Equal(await ScalarAsync("SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c, g)))) FROM t"),
            await ScalarAsync("SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c2, g)))) FROM t_osc_new"));
        Assert.Equal("20000", await ScalarAsync("SELECT COUNT(*) FROM t_osc_new WHERE extra = 7"));
    }

    [Fact]
    public async Task A_dense_integer_key_is_cut_by_arithmetic_and_every_row_arrives()
    {
        await ExecuteAsync("""
            CREATE TABLE w (id INT UNSIGNED PRIMARY KEY, v VARCHAR(20) NOT NULL);
            INSERT INTO w SELECT seq, CONCAT('v', seq) FROM seq_1_to_20000 WHERE seq % 5 <> 0;
            ANALYZE TABLE w;
            CREATE TABLE w_osc_new LIKE w;
            ALTER TABLE w_osc_new MODIFY v VARCHAR(40) NOT NULL;
            """);
        var (_, source) = await CopierAsync("w", "w_osc_new", ["id"], new Dictionary<string, string>(), workers: 1);
        KeySpan? span = await source.ReadKeySpanAsync(CancellationToken.None);
        var width = new WidthChunkedCopySource(source, source);
        var copier = new KeysetCopier(width, new ChunkSizer(TimeSpan.FromMilliseconds(50), initialRows: 1000, minRows: 1000, maxRows: 1000), null, workers: 4);

        await copier.RunAsync(null, CancellationToken.None);

        Assert.NotNull(span);
        Assert.IsType<uint>(span.Min);
        Assert.Equal(19999u, span.Max);
        Assert.True(width.CutsByWidth, $"estimate {span.EstimatedRows} rows for a span of {span.Width}");
        Assert.Equal(16000, copier.RowsCopied);
        Assert.Equal(20, copier.ChunksCopied);
        Assert.Equal(await ScalarAsync("SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, v)))) FROM w"),
            await ScalarAsync("SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, v)))) FROM w_osc_new"));
    }

    [Fact]
    public async Task A_composite_key_has_no_span_and_is_walked()
    {
        await ExecuteAsync("CREATE TABLE ck (a INT NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b)); INSERT INTO ck SELECT seq % 10, seq FROM seq_1_to_100; CREATE TABLE ck_osc_new LIKE ck;");
        var (_, source) = await CopierAsync("ck", "ck_osc_new", ["a", "b"], new Dictionary<string, string>(), workers: 1);

        Assert.Null(await source.ReadKeySpanAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Copies_a_table_with_a_composite_key()
    {
        await ExecuteAsync("""
            CREATE TABLE c (tenant VARCHAR(8) NOT NULL, id INT NOT NULL, v INT, PRIMARY KEY (tenant, id));
            INSERT INTO c SELECT CONCAT('t', seq % 7), seq, seq * 10 FROM seq_1_to_5000;
            CREATE TABLE c_osc_new LIKE c;
            ALTER TABLE c_osc_new MODIFY v BIGINT;
            """);
        var (copier, _) = await CopierAsync("c", "c_osc_new", ["tenant", "id"], new Dictionary<string, string>(), workers: 3, maxRows: 300);

        await copier.RunAsync(null, CancellationToken.None);

        Assert.Equal(await ScalarAsync("SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', tenant, id, v)))) FROM c"),
            await ScalarAsync("SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', tenant, id, v)))) FROM c_osc_new"));
    }

    [Fact]
    public async Task A_value_that_does_not_fit_the_new_type_fails_the_copy_instead_of_being_clipped()
    {
        await ExecuteAsync("""
            CREATE TABLE n (id INT PRIMARY KEY, v INT);
            INSERT INTO n VALUES (1, 5), (2, 100000);
            CREATE TABLE n_osc_new LIKE n;
            ALTER TABLE n_osc_new MODIFY v SMALLINT;
            """);
        var (copier, _) = await CopierAsync("n", "n_osc_new", ["id"], new Dictionary<string, string>(), workers: 1);

        var e = await Assert.ThrowsAsync<OnlineSchemaChange.Core.Migration.DataDoesNotFitException>(() => copier.RunAsync(null, CancellationToken.None));
        Assert.Contains("Out of range", Assert.IsType<MySqlException>(e.InnerException).Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("does not fit the data", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rows_the_applier_wrote_first_are_not_overwritten_by_the_copy()
    {
        await ExecuteAsync("""
            CREATE TABLE r (id INT PRIMARY KEY, v VARCHAR(10));
            INSERT INTO r VALUES (1, 'old'), (2, 'old');
            CREATE TABLE r_osc_new LIKE r;
            INSERT INTO r_osc_new VALUES (2, 'newer');
            """);
        var (copier, _) = await CopierAsync("r", "r_osc_new", ["id"], new Dictionary<string, string>(), workers: 1);

        await copier.RunAsync(null, CancellationToken.None);

        Assert.Equal("1=old,2=newer", await ScalarAsync("SELECT GROUP_CONCAT(CONCAT(id, '=', v) ORDER BY id) FROM r_osc_new"));
        Assert.Equal(2, copier.RowsCopied);
    }

    [Fact]
    public async Task The_lock_free_copy_reads_past_a_row_an_application_transaction_holds_while_the_locking_copy_waits()
    {
        await ExecuteAsync("""
            CREATE TABLE lf (id INT PRIMARY KEY, v VARCHAR(10));
            INSERT INTO lf VALUES (1, 'a'), (2, 'b'), (3, 'c');
            CREATE TABLE lf_osc_new LIKE lf;
            CREATE TABLE lf_osc_log (id INT NOT NULL PRIMARY KEY, ts TIMESTAMP(6) NOT NULL, value LONGTEXT NULL);
            """);
        await using var application = new MySqlConnection(_connectionString);
        await application.OpenAsync();
        await using MySqlTransaction transaction = await application.BeginTransactionAsync();
        await using (var update = new MySqlCommand("UPDATE lf SET v = 'held' WHERE id = 2", application, transaction))
        {
            await update.ExecuteNonQueryAsync();
        }

        var mapping = ColumnMapping.Build(await ColumnsAsync("lf"), await ColumnsAsync("lf_osc_new"), new Dictionary<string, string>());
        var range = new KeyRange(0, null, null);
        var lockFree = new MySqlCopySource(_connectionString, new TableName(_database, "lf"), new TableName(_database, "lf_osc_new"),
            new MySqlKeyPredicate(["id"]), mapping, commitMarker: new TableName(_database, "lf_osc_log"));
        Assert.Equal(3, await lockFree.CopyRangeAsync(range, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("1=a,2=b,3=c", await ScalarAsync("SELECT GROUP_CONCAT(CONCAT(id, '=', v) ORDER BY id) FROM lf_osc_new"));
        Assert.Equal("1", await ScalarAsync($"SELECT COUNT(*) FROM lf_osc_log WHERE id = {MySqlCopySource.CommitMarkerId}"));

        var locking = new MySqlCopySource(_connectionString,
            new TableName(_database, "lf"), new TableName(_database, "lf_osc_new"), new MySqlKeyPredicate(["id"]), mapping);
        Task<long> waiting = locking.CopyRangeAsync(range, CancellationToken.None);
        await Task.Delay(500);
        Assert.False(waiting.IsCompleted, "the locking copy should wait on the application's row lock");
        await transaction.RollbackAsync();
        Assert.Equal(3, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task The_change_writer_applies_deletes_and_whole_row_upserts_atomically_and_idempotently()
    {
        await ExecuteAsync("""
            CREATE TABLE w (id INT PRIMARY KEY, name VARCHAR(20), gone INT);
            CREATE TABLE w_osc_new (id INT PRIMARY KEY, label VARCHAR(20), extra INT DEFAULT 1);
            INSERT INTO w_osc_new (id, label) VALUES (1, 'a'), (2, 'b'), (3, 'c');
            """);
        var mapping = ColumnMapping.Build(
            [new TableColumn("id", false), new TableColumn("name", false), new TableColumn("gone", false)],
            [new TableColumn("id", false), new TableColumn("label", false), new TableColumn("extra", false)],
            new Dictionary<string, string> { ["name"] = "label" });
        await using var writer = new MySqlChangeWriter(_connectionString, new TableName(_database, "w_osc_new"), new MySqlKeyPredicate(["id"]), mapping);
        var pending = new PendingChanges();
        pending.Add(RowChange.Delete(new RowKey(1)));
        pending.Add(RowChange.Update(new RowKey(2), new RowKey(2), [2, "b2", 9]));
        pending.Add(RowChange.Insert(new RowKey(4), [4, "d", 9]));
        pending.Add(RowChange.Update(new RowKey(3), new RowKey(30), [30, "c moved", 9]));
        PendingBatch batch = pending.Drain();

        await writer.WriteAsync(batch, CancellationToken.None);
        await writer.WriteAsync(batch, CancellationToken.None);

        Assert.Equal("2=b2,4=d,30=c moved", await ScalarAsync("SELECT GROUP_CONCAT(CONCAT(id, '=', label) ORDER BY id) FROM w_osc_new"));
    }

    [Fact]
    public async Task Batches_share_one_session_and_one_the_server_ended_while_idle_is_replaced_without_failing_a_batch()
    {
        await ExecuteAsync("""
            CREATE TABLE s (id INT PRIMARY KEY, v INT);
            CREATE TABLE s_osc_new (id INT PRIMARY KEY, v INT);
            """);
        var columns = new[] { new TableColumn("id", false), new TableColumn("v", false) };
        string plain = new MySqlConnectionStringBuilder(_connectionString) { Pooling = false }.ConnectionString;
        await MySqlConnection.ClearAllPoolsAsync();
        string others = $"FROM information_schema.PROCESSLIST WHERE DB = '{_database}' AND ID <> CONNECTION_ID()";
        await using var writer = new MySqlChangeWriter(plain, new TableName(_database, "s_osc_new"), new MySqlKeyPredicate(["id"]),
            ColumnMapping.Build(columns, columns, new Dictionary<string, string>()));
        async Task WriteAsync(int id, int v)
        {
            var pending = new PendingChanges();
            pending.Add(RowChange.Insert(new RowKey(id), [id, v]));
            await writer.WriteAsync(pending.Drain(), CancellationToken.None);
        }

        await WriteAsync(1, 10);
        await WriteAsync(2, 20);
        string session = await MySqlTestSql.ScalarAsync(plain, $"SELECT GROUP_CONCAT(ID) {others}");
        Assert.DoesNotContain(",", session, StringComparison.Ordinal);

        await MySqlTestSql.ExecuteAsync(plain, $"KILL CONNECTION {session}");
        await WriteAsync(3, 30);

        Assert.Equal("1=10,2=20,3=30", await ScalarAsync("SELECT GROUP_CONCAT(CONCAT(id, '=', v) ORDER BY id) FROM s_osc_new"));
        Assert.NotEqual(session, await MySqlTestSql.ScalarAsync(plain, $"SELECT GROUP_CONCAT(ID) {others} AND COMMAND = 'Sleep'"));
    }

    [Fact]
    public async Task Replaying_onto_a_shadow_with_a_new_primary_key_leaves_no_stale_row_versions()
    {
        await ExecuteAsync("""
            CREATE TABLE p (id INT PRIMARY KEY, a INT NOT NULL);
            CREATE TABLE p_osc_new (id INT NOT NULL, a INT NOT NULL, PRIMARY KEY (id, a));
            INSERT INTO p_osc_new VALUES (1, 10), (2, 20);
            """);
        var columns = new[] { new TableColumn("id", false), new TableColumn("a", false) };
        await using var writer = new MySqlChangeWriter(_connectionString, new TableName(_database, "p_osc_new"), new MySqlKeyPredicate(["id"]),
            ColumnMapping.Build(columns, columns, new Dictionary<string, string>()));
        var pending = new PendingChanges();
        pending.Add(RowChange.Update(new RowKey(2), new RowKey(2), [2, 21]));

        await writer.WriteAsync(pending.Drain(), CancellationToken.None);

        Assert.Equal("1=10,2=21", await ScalarAsync("SELECT GROUP_CONCAT(CONCAT(id, '=', a) ORDER BY id) FROM p_osc_new"));
    }

    private async Task<(KeysetCopier, MySqlCopySource)> CopierAsync(string table, string shadow, string[] key, IReadOnlyDictionary<string, string> renames,
        int workers, int maxRows = 2000)
    {
        var source = new MySqlCopySource(_connectionString, new TableName(_database, table), new TableName(_database, shadow), new MySqlKeyPredicate(key),
            ColumnMapping.Build(await ColumnsAsync(table), await ColumnsAsync(shadow), renames));
        var copier = new KeysetCopier(source, new ChunkSizer(TimeSpan.FromMilliseconds(50), initialRows: 500, minRows: 100, maxRows: maxRows), null, workers);
        return (copier, source);
    }

    private async Task<IReadOnlyList<TableColumn>> ColumnsAsync(string table)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        var columns = await new MySqlCatalog(connection).ColumnsAsync(new TableName(_database, table), CancellationToken.None);
        return columns.Select(c => new TableColumn(c.Name, c.Generated)).ToList();
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<string> ScalarAsync(string sql)
    {
        await using var connection = new MySqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand(sql, connection);
        return Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture)!;
    }
}
