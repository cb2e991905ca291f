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
    [Fact]
    public async Task Copy_and_binlog_replay_converge_under_concurrent_writes()
    {
        string connectionString = await servers.NewMySqlDatabaseAsync("online");
        var builder = new MySqlConnectionStringBuilder(connectionString);
        string db = builder.Database;
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, c VARCHAR(40), d DECIMAL(40,10), ts DATETIME(6), b BLOB);
            INSERT INTO t (id, k, c, d, ts, b) SELECT seq, seq % 97, CONCAT('row-', seq), seq / 7, NOW(6) - INTERVAL seq SECOND, UNHEX(HEX(seq)) FROM seq_1_to_20000;
            CREATE TABLE t_osc_new LIKE t;
            ALTER TABLE t_osc_new MODIFY k BIGINT NOT NULL, ADD COLUMN extra INT DEFAULT 1;
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
        var applier = new ChangeApplier(new MySqlChangeWriter(connectionString, shadow, key, mapping),
            new ApplierOptions { MaxPendingKeys = 500 }, TimeProvider.System);
        Task feeding = feed.RunAsync(changes.Writer, stop.Token);
        Task applying = applier.RunAsync(changes.Reader, stop.Token);

        using var loadStop = new CancellationTokenSource();
        Task<int> load = WriteLoadAsync(connectionString, loadStop.Token);
        var copier = new KeysetCopier(new MySqlCopySource(connectionString, original, shadow, key, mapping),
            new ChunkSizer(TimeSpan.FromMilliseconds(50), initialRows: 500, minRows: 200, maxRows: 2000), null, workers: 2);
        await copier.RunAsync(null, stop.Token);

        // Let the load run on a little after the copy, then stop it and wait for the replay to pass its last write.
        await Task.Delay(500);
        await loadStop.CancelAsync();
        int transactions = await load;
        (string endFile, long endPosition) = await MasterStatusAsync(connectionString);
        await applier.WaitForAsync(new MySqlBinlogPosition(endFile, endPosition), stop.Token);

        const string checksum = "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('|', id, k, c, d, ts, HEX(b), ISNULL(c), ISNULL(b)))), 0)) FROM ";
        string expected = await ScalarAsync(connectionString, checksum + "t");
        string actual = await ScalarAsync(connectionString, checksum + "t_osc_new");
        Assert.True(transactions > 50, $"the load ran only {transactions} transactions");
        Assert.True(applier.ChangesReceived > 50, $"the replay saw only {applier.ChangesReceived} changes");
        Assert.Equal(expected, actual);

        await stop.CancelAsync();
        await Task.WhenAll(feeding, applying).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    /// <summary>Random single- and multi-statement transactions until cancelled; returns how many committed.</summary>
    private static async Task<int> WriteLoadAsync(string connectionString, CancellationToken cancellationToken)
    {
        var random = new Random(7);
        int committed = 0;
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        while (!cancellationToken.IsCancellationRequested)
        {
            await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None);
            try
            {
                for (int n = random.Next(1, 4); n > 0; n--)
                {
                    int id = random.Next(1, 20_000);
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
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.LockDeadlock or MySqlErrorCode.LockWaitTimeout)
            {
                // As an application would: the transaction was rolled back; it simply did not happen.
                await transaction.RollbackAsync(CancellationToken.None);
            }
        }

        return committed;
    }
}
