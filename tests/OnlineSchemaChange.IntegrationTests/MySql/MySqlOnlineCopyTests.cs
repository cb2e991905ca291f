using System.Threading.Channels;
using MySqlConnector;
using OnlineSchemaChange.Core.Apply;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using OnlineSchemaChange.MySql.Apply;
using OnlineSchemaChange.MySql.Copy;
using OnlineSchemaChange.MySql.Protocol;
using OnlineSchemaChange.MySql.Replication;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// The heart of the online ALTER, minus the swap: the chunked copy and the binlog replay run together while a write
/// load inserts, updates, moves keys and deletes; with the load stopped and the replay caught up, an independent SQL
/// checksum of the original equals that of the shadow.
/// </summary>
[Collection("servers")]
public sealed class MySqlOnlineCopyTests(ServersFixture servers)
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Copy_and_binlog_replay_converge_under_concurrent_writes(bool lockFree)
    {
        string connectionString = await servers.NewMySqlDatabaseAsync("online");
        var builder = new MySqlConnectionStringBuilder(connectionString);
        string db = builder.Database;
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40), d DECIMAL(40,10), ts DATETIME(6), b BLOB);
            INSERT INTO t (id, k, c, d, ts, b) SELECT seq, seq % 97, CONCAT('row-', seq), seq / 7, NOW(6) - INTERVAL seq SECOND, UNHEX(HEX(seq)) FROM seq_1_to_60000;
            CREATE TABLE t_osc_new LIKE t;
            ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL, ADD COLUMN extra INT DEFAULT 1;
            CREATE TABLE t_osc_log (id INT NOT NULL PRIMARY KEY, ts TIMESTAMP(6) NOT NULL, value LONGTEXT NULL);
            """);
        (string file, long position) = await MasterStatusAsync(connectionString);

        var columns = new[] { "id", "k", "c", "d", "ts", "b" }.Select(n => new TableColumn(n, false)).ToList();
        var mapping = ColumnMapping.Build(columns, [.. columns, new TableColumn("extra", false)], new Dictionary<string, string>());
        var original = new TableName(db, "t");
        var shadow = new TableName(db, "t_osc_new");
        var key = new MySqlKeyPredicate(["id"]);

        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var endpoint = new MySqlEndpoint(builder.Server, (int)builder.Port, builder.UserID, builder.Password);
        await using var client = new BinlogClient(new BinlogClientOptions(endpoint)
        {
            Start = new BinlogStart.FilePosition(file, (uint)position),
            Tables = new HashSet<string> { $"{db}.t" },
        });
        var changes = Channel.CreateBounded<ReplicationMessage>(10_000);
        var feed = new MySqlChangeFeed(client.ReadEventsAsync(stop.Token), db, "t", [0]);
        CopyFence? fence = lockFree ? new CopyFence() : null;
        await using var writer = new MySqlChangeWriter(connectionString, shadow, key, mapping);
        var applier = new ChangeApplier(writer, new ApplierOptions { MaxPendingKeys = 500 }, TimeProvider.System, fence);
        Task feeding = feed.RunAsync(changes.Writer, stop.Token);
        Task applying = applier.RunAsync(changes.Reader, stop.Token);

        using var loadStop = new CancellationTokenSource();
        ICopySource source = lockFree
            ? new FencedCopySource(new MySqlCopySource(connectionString, original, shadow, key, mapping, new TableName(db, "t_osc_log")), fence!)
            : new MySqlCopySource(connectionString, original, shadow, key, mapping);
        var copier = new KeysetCopier(source,
            new ChunkSizer(TimeSpan.FromMilliseconds(100), initialRows: 1000, minRows: 500, maxRows: 3000), null, workers: 2);

        // Besides the random load, an adversary deletes and rewrites rows just ahead of the copy, inside the ranges
        // being read: where a lock-free read and the replay race.
        int AheadOfTheCopy(Random random) => (copier.Watermark?.Values[0] is int at ? at : 0) + random.Next(1, 3000);
        Task<(int Committed, int Failed)> load = WriteLoadAsync(connectionString, 7, r => r.Next(1, 60_000), loadStop.Token);
        Task<(int Committed, int Failed)> adversary = WriteLoadAsync(connectionString, 11, AheadOfTheCopy, loadStop.Token);
        await copier.RunAsync(null, stop.Token);

        // Let the load run on a little after the copy, then stop it and wait for the replay to pass its last write.
        await Task.Delay(500);
        await loadStop.CancelAsync();
        (int transactions, int failed) = await load;
        (int adversaryTransactions, int adversaryFailed) = await adversary;
        (string endFile, long endPosition) = await MasterStatusAsync(connectionString);
        await applier.WaitForAsync(new MySqlBinlogPosition(endFile, endPosition), stop.Token);

        const string checksum = "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('|', id, k, c, d, ts, HEX(b), ISNULL(c), ISNULL(b)))), 0)) FROM ";
        string expected = await ScalarAsync(connectionString, checksum + "t");
        string actual = await ScalarAsync(connectionString, checksum + "t_osc_new");
        Assert.True(transactions > 50, $"the load ran only {transactions} transactions");
        Assert.True(applier.ChangesReceived > 50, $"the replay saw only {applier.ChangesReceived} changes");
        Assert.True(adversaryTransactions > 20, $"the adversary ran only {adversaryTransactions} transactions");
        Assert.Equal(expected, actual);
        if (lockFree)
        {
            // Nothing of ours locks the original: no application transaction loses a deadlock or a lock wait to the copy.
            Assert.Equal(0, failed + adversaryFailed);
        }

        await stop.CancelAsync();
        await Task.WhenAll(feeding, applying).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    /// <summary>Random single- and multi-statement transactions on the rows <paramref name="pick"/> chooses, until cancelled.</summary>
    private static async Task<(int Committed, int Failed)> WriteLoadAsync(string connectionString, int seed, Func<Random, int> pick, CancellationToken cancellationToken)
    {
        var random = new Random(seed);
        int committed = 0, failed = 0;
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        while (!cancellationToken.IsCancellationRequested)
        {
            await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None);
            try
            {
                for (int n = random.Next(1, 4); n > 0; n--)
                {
                    int id = pick(random);
                    string sql = random.Next(6) switch
                    {
                        0 => $"INSERT INTO t (k, c, d, ts, b) VALUES ({random.Next(100)}, 'new-{random.Next()}', {random.Next()} / 3, NOW(6), x'CAFE')",
                        1 => $"UPDATE t SET k = k + 1, c = CONCAT(c, '+') WHERE id = {id}",
                        2 => $"DELETE FROM t WHERE id = {id}",
                        3 => $"UPDATE t SET id = id + 1000000 WHERE id = {id}",
                        4 => $"UPDATE t SET c = NULL, b = NULL, d = -d WHERE id = {id}",
                        _ => $"UPDATE t SET ts = NOW(6) WHERE id BETWEEN {id} AND {id + 20}",
                    };
                    await using var command = new MySqlCommand(sql, connection, transaction);
                    await command.ExecuteNonQueryAsync(CancellationToken.None);
                }

                await transaction.CommitAsync(CancellationToken.None);
                committed++;
            }
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.DuplicateKeyEntry)
            {
                // The two loads moved rows onto the same key: their own conflict, not one with the copy.
                await transaction.RollbackAsync(CancellationToken.None);
            }
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.LockDeadlock or MySqlErrorCode.LockWaitTimeout)
            {
                // As an application would: the transaction was rolled back; it simply did not happen.
                await transaction.RollbackAsync(CancellationToken.None);
                failed++;
            }
        }

        return (committed, failed);
    }
}
