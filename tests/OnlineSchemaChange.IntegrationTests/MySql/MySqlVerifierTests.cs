using MySqlConnector;
using OnlineSchemaChange.Core.Cutover;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using OnlineSchemaChange.MySql.Copy;
using OnlineSchemaChange.MySql.Schema;
using OnlineSchemaChange.MySql.Verify;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>Verification before the cut-over on a real MariaDB: equal in the new types, repairs, and refusal.</summary>
[Collection("servers")]
public sealed class MySqlVerifierTests(ServersFixture servers)
{
    private const string Setup = """
        CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40), ts DATETIME, d DECIMAL(10,2), b VARBINARY(8), u INT);
        INSERT INTO t SELECT seq, seq % 97, IF(seq % 10 = 0, NULL, CONCAT('row-', seq)), '2024-01-01' + INTERVAL seq MINUTE, seq / 8, UNHEX(HEX(seq)), seq FROM seq_1_to_5000;
        CREATE TABLE t_osc_new LIKE t;
        """;

    [Fact]
    public async Task A_faithful_shadow_in_new_types_verifies()
    {
        var (verifier, _) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL, MODIFY c TEXT, MODIFY ts DATETIME(6), MODIFY d DECIMAL(14,4)");

        VerificationResult result = await verifier.RunAsync(CancellationToken.None);

        Assert.Equal(5000, result.Rows);
        Assert.Equal(5, result.Chunks); // the dense key cut by arithmetic: 1,000 key values each, the last one open-ended
        Assert.Equal(0, result.RepairedChunks);
        Assert.True(result.WritesBlocked > TimeSpan.Zero, $"writes blocked {result.WritesBlocked}");
    }

    /// <summary>A key too sparse to cut by arithmetic is walked: each range ends where 1,000 rows do.</summary>
    [Fact]
    public async Task A_sparse_key_is_walked_for_its_ranges_and_verifies()
    {
        var (verifier, _) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL", "UPDATE t SET id = id * 10 ORDER BY id DESC");

        VerificationResult result = await verifier.RunAsync(CancellationToken.None);

        Assert.Equal(5000, result.Rows);
        Assert.Equal(6, result.Chunks); // five ranges of 1,000 rows found by walking the key, and the open-ended last one
        Assert.Equal(0, result.RepairedChunks);
    }

    /// <summary>Writes queue behind the READ lock from its request on, so a request that waits counts in the figure.</summary>
    [Fact]
    public async Task Writes_blocked_counts_the_read_lock_from_its_request_to_its_release()
    {
        var (verifier, connectionString) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL");
        await using var writer = new MySqlConnection(connectionString);
        await writer.OpenAsync();
        await using MySqlTransaction open = await writer.BeginTransactionAsync();
        await using (var update = new MySqlCommand("UPDATE t SET u = u WHERE id = 1", writer, open))
        {
            await update.ExecuteNonQueryAsync();
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        Task<VerificationResult> verifying = verifier.RunAsync(CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.False(verifying.IsCompleted, "the READ lock waits for the open transaction's metadata lock");
        await open.CommitAsync();
        VerificationResult result = await verifying;

        Assert.Equal(0, result.RepairedChunks);
        Assert.InRange(result.WritesBlocked!.Value, TimeSpan.FromSeconds(1.4), clock.Elapsed);
    }

    [Fact]
    public async Task A_shadow_that_drifted_is_repaired_chunk_by_chunk_then_verifies()
    {
        var (verifier, connectionString) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL");
        await ExecuteAsync(connectionString, "UPDATE t_osc_new SET c = 'drift' WHERE id = 5; DELETE FROM t_osc_new WHERE id = 2500; INSERT INTO t_osc_new (id, k) VALUES (9999, 1)");

        VerificationResult result = await verifier.RunAsync(CancellationToken.None);

        Assert.Equal(3, result.RepairedChunks);
        Assert.Equal(await ChecksumAsync(connectionString, "t"), await ChecksumAsync(connectionString, "t_osc_new"));
    }

    [Fact]
    public async Task A_chunk_larger_than_a_repair_piece_is_copied_again_in_pieces_that_meet_exactly()
    {
        // One open-ended chunk of 25,000 rows: repaired in pieces of 10,000, 10,000 and the rest.
        var (verifier, connectionString) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL",
            "INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq), '2024-01-01', 1, NULL, seq FROM seq_5001_to_25000", chunkRows: 30_000);
        await ExecuteAsync(connectionString, """
            UPDATE t_osc_new SET c = 'drift' WHERE id IN (1, 10000, 10001, 20000, 20001, 25000);
            DELETE FROM t_osc_new WHERE id IN (9999, 19999);
            INSERT INTO t_osc_new (id, k) VALUES (30000, 1);
            """);

        VerificationResult result = await verifier.RunAsync(CancellationToken.None);

        Assert.Equal(1, result.Chunks);
        Assert.Equal(1, result.RepairedChunks);
        Assert.Equal(await ChecksumAsync(connectionString, "t"), await ChecksumAsync(connectionString, "t_osc_new"));
    }

    [Fact]
    public async Task Drift_in_columns_the_alter_left_as_they_were_is_caught_null_apart_from_empty()
    {
        // Only k changes type: c, ts, d and b are hashed as they are, without conversion.
        var (verifier, connectionString) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL");
        await ExecuteAsync(connectionString,
            "UPDATE t_osc_new SET c = '' WHERE id = 10; UPDATE t_osc_new SET b = UNHEX('00') WHERE id = 1500; UPDATE t_osc_new SET ts = ts + INTERVAL 1 SECOND WHERE id = 3200; UPDATE t_osc_new SET d = d + 0.01 WHERE id = 4999");

        VerificationResult result = await verifier.RunAsync(CancellationToken.None);

        Assert.Equal(4, result.RepairedChunks);
        Assert.Equal(await ChecksumAsync(connectionString, "t"), await ChecksumAsync(connectionString, "t_osc_new"));
    }

    [Fact]
    public async Task Drift_in_an_unchanged_not_null_column_is_caught_without_its_null_mark()
    {
        // u is NOT NULL in both tables and left as it was: hashed without ISNULL, and a changed value still differs.
        var (verifier, connectionString) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL",
            "ALTER TABLE t MODIFY u INT NOT NULL; ALTER TABLE t_osc_new MODIFY u INT NOT NULL");
        await ExecuteAsync(connectionString, "UPDATE t_osc_new SET u = u + 1 WHERE id = 77; UPDATE t_osc_new SET u = 0 WHERE id = 4321");

        VerificationResult result = await verifier.RunAsync(CancellationToken.None);

        Assert.Equal(2, result.RepairedChunks);
        Assert.Equal("0", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t JOIN t_osc_new n USING (id) WHERE t.u <> n.u"));
    }

    [Fact]
    public async Task A_column_whose_character_set_changed_compares_by_characters_not_bytes()
    {
        // Same type name, other character set: the bytes of 'é' differ, the characters do not.
        var (verifier, _) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY c VARCHAR(40) CHARACTER SET latin1", 
            "ALTER TABLE t MODIFY c VARCHAR(40) CHARACTER SET utf8mb4; ALTER TABLE t_osc_new MODIFY c VARCHAR(40) CHARACTER SET utf8mb4; UPDATE t SET c = CONCAT('café-', id) WHERE id % 7 = 0");

        VerificationResult result = await verifier.RunAsync(CancellationToken.None);

        Assert.Equal(0, result.RepairedChunks);
    }

    [Fact]
    public async Task A_unique_key_over_duplicates_is_caught_and_refused_after_three_repairs()
    {
        var (verifier, _) = await PrepareAsync("ALTER TABLE t_osc_new ADD UNIQUE KEY uq (u)", "UPDATE t SET u = 1 WHERE id IN (1, 2, 3)");

        var error = await Assert.ThrowsAsync<OnlineSchemaChange.Core.Verify.VerificationFailedException>(() => verifier.RunAsync(CancellationToken.None));

        Assert.Contains("Verification failed", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was swapped", error.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_replay_that_does_not_catch_up_fails_verification_without_ever_taking_the_lock()
    {
        int drains = 0;
        var (verifier, connectionString) = await PrepareAsync("ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL",
            drainTo: async (_, ct) => { Interlocked.Increment(ref drains); await Task.Delay(Timeout.Infinite, ct); }, drainTimeout: TimeSpan.FromMilliseconds(200));

        var error = await Assert.ThrowsAsync<OnlineSchemaChange.Core.OscException>(() => verifier.RunAsync(CancellationToken.None));

        Assert.Equal(2, drains); // per attempt, only the catch-up: it gives up before the lock is taken
        Assert.Contains("the replay did not catch up within 0.2 s before the lock", error.Message, StringComparison.Ordinal);
        await ExecuteAsync(connectionString, "SET SESSION lock_wait_timeout = 1; UPDATE t SET k = k WHERE id = 1");
    }

    private async Task<(MySqlVerifier, string)> PrepareAsync(string alterShadow, string? before = null, int chunkRows = 1000,
        Func<OnlineSchemaChange.Core.Changes.ReplicationPosition, CancellationToken, Task>? drainTo = null, TimeSpan? drainTimeout = null)
    {
        string connectionString = await servers.NewMySqlDatabaseAsync("verify");
        string db = new MySqlConnectionStringBuilder(connectionString).Database;
        await ExecuteAsync(connectionString, Setup);
        if (before is not null)
        {
            await ExecuteAsync(connectionString, before);
        }

        await ExecuteAsync(connectionString, alterShadow);
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync();
        var catalog = new MySqlCatalog(connection);
        var original = new TableName(db, "t");
        var shadow = new TableName(db, "t_osc_new");
        var shadowColumns = await catalog.ColumnsAsync(shadow, CancellationToken.None);
        var mapping = ColumnMapping.Build(
            (await catalog.ColumnsAsync(original, CancellationToken.None)).Select(c => new TableColumn(c.Name, c.Generated)).ToList(),
            shadowColumns.Select(c => new TableColumn(c.Name, c.Generated)).ToList(), new Dictionary<string, string>());
        var key = new MySqlKeyPredicate(["id"]);
        await new KeysetCopier(new MySqlCopySource(connectionString, original, shadow, key, mapping), new ChunkSizer(TimeSpan.FromMilliseconds(50)), null, 2)
            .RunAsync(null, CancellationToken.None);

        // No replay runs in these tests: nothing writes to the original, so there is nothing to drain.
        var verifier = new MySqlVerifier(connectionString, original, shadow, key, key, mapping,
            shadowColumns.ToDictionary(c => c.Name, c => c.ColumnType), drainTo ?? ((_, _) => Task.CompletedTask), chunkRows)
        {
            DrainTimeout = drainTimeout ?? TimeSpan.FromSeconds(3),
            LockAttempts = drainTimeout is null ? 5 : 2,
        };
        return (verifier, connectionString);
    }

    private static async Task<string> ChecksumAsync(string connectionString, string table)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new MySqlCommand($"SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('|', id, k, c, ISNULL(c))))) FROM {table}", connection);
        return Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture)!;
    }
}
