using System.Text.Json;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.IntegrationTests.MySql.Binlog;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;
using Xunit.Abstractions;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>
/// The copy's writes marked skip_replication on MariaDB: osc's stream is spared them, the replica still applies them,
/// and a replica that would not apply them keeps them unmarked.
/// </summary>
[Collection("servers")]
public sealed class MySqlCopyEventFilterTests(ServersFixture servers, ITestOutputHelper output)
{
    private const int Rows = 20_000;
    private const string StreamedBackNote = "streamed back to osc";
    private readonly BinlogTestServer binlog = new(servers);

    [Fact]
    public async Task With_a_replica_that_applies_marked_events_the_copy_is_marked_left_out_of_the_stream_and_replicated()
    {
        OscTestDatabase db = await CreateAsync("copy_marked");
        string replica = new MySqlConnectionStringBuilder(await servers.MySqlReplicaAsync()) { Database = db.Name }.ConnectionString;
        await WaitUntilTheReplicaIsTheOnlyReaderAsync(db.ConnectionString);
        BinlogStart.FilePosition start = await binlog.CurrentPositionAsync();

        OscRunner.Result run = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.DoesNotContain(Notes(run), n => n.Contains(StreamedBackNote, StringComparison.Ordinal));
        await ExecuteAsync(db.ConnectionString, "INSERT INTO m VALUES (1)");

        // A stream that asks to be spared marked events sees none of the copy's rows; one that does not, all of them.
        Assert.Equal(0, await ShadowRowsStreamedAsync(db.Name, start, skipMarked: true));
        Assert.Equal(Rows, await ShadowRowsStreamedAsync(db.Name, start, skipMarked: false));

        // The replica applied the marked rows: its new table is the primary's.
        await WaitForReplicaAsync(db.ConnectionString, replica);
        Assert.Equal(Rows.ToString(System.Globalization.CultureInfo.InvariantCulture), await ScalarAsync(replica, "SELECT COUNT(*) FROM t"));
        Assert.Equal(await ScalarAsync(db.ConnectionString, "SELECT SUM(CRC32(CONCAT_WS('|', id, k, c))) FROM t"),
            await ScalarAsync(replica, "SELECT SUM(CRC32(CONCAT_WS('|', id, k, c))) FROM t"));
        Assert.Equal("bigint(20)", await ScalarAsync(replica,
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
    }

    [Fact]
    public async Task A_replica_that_filters_marked_events_keeps_the_copy_unmarked_and_says_why()
    {
        OscTestDatabase db = await CreateAsync("copy_unmarked");
        string replica = new MySqlConnectionStringBuilder(await servers.MySqlReplicaAsync()) { Database = db.Name }.ConnectionString;
        await SetReplicaFilterAsync(replica, "FILTER_ON_SLAVE");
        try
        {
            OscRunner.Result dryRun = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--json");
            Assert.True(dryRun.ExitCode == 0, dryRun.Stderr);
            string dryNotes = string.Join(" ", JsonDocument.Parse(dryRun.Stdout).RootElement.GetProperty("notes").EnumerateArray().Select(n => n.GetString()));
            Assert.Contains("replicate_events_marked_for_skip = FILTER_ON_SLAVE", dryNotes, StringComparison.Ordinal);

            BinlogStart.FilePosition start = await binlog.CurrentPositionAsync();
            OscRunner.Result run = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json");
            Assert.True(run.ExitCode == 0, run.Stderr);
            string note = Assert.Single(Notes(run), n => n.Contains(StreamedBackNote, StringComparison.Ordinal));
            output.WriteLine(note);
            Assert.Contains("FILTER_ON_SLAVE", note, StringComparison.Ordinal);
            await ExecuteAsync(db.ConnectionString, "INSERT INTO m VALUES (1)");

            // Unmarked: even a stream that asks to be spared marked events gets every copied row, and so does the replica.
            Assert.Equal(Rows, await ShadowRowsStreamedAsync(db.Name, start, skipMarked: true));
            await WaitForReplicaAsync(db.ConnectionString, replica);
            Assert.Equal(Rows.ToString(System.Globalization.CultureInfo.InvariantCulture), await ScalarAsync(replica, "SELECT COUNT(*) FROM t"));

            // Turning it off needs no replica at all.
            await ExecuteAsync(db.ConnectionString, "DROP TABLE t_osc_old");
            OscRunner.Result off = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k INT NOT NULL", "--execute", "--json",
                "--copy-skip-replication", "off");
            Assert.True(off.ExitCode == 0, off.Stderr);
            Assert.DoesNotContain(Notes(off), n => n.Contains(StreamedBackNote, StringComparison.Ordinal));
        }
        finally
        {
            await SetReplicaFilterAsync(replica, "REPLICATE");
        }
    }

    private async Task<OscTestDatabase> CreateAsync(string prefix) => await OscTestDatabase.CreateAsync(servers, prefix, $"""
        CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(40));
        INSERT INTO t SELECT seq, seq % 97, CONCAT('row-', seq) FROM seq_1_to_{Rows};
        CREATE TABLE m (id INT PRIMARY KEY);
        """);

    private static List<string> Notes(OscRunner.Result run)
    {
        JsonElement done = LiveOscRun.ParseAll(run.Stdout)[^1];
        Assert.Equal("done", done.GetProperty("event").GetString());
        return done.TryGetProperty("notes", out JsonElement notes) ? notes.EnumerateArray().Select(n => n.GetString()!).ToList() : [];
    }

    /// <summary>Rows of the shadow (t_osc_new) a stream from <paramref name="start"/> receives, read up to the insert into m.</summary>
    private async Task<int> ShadowRowsStreamedAsync(string database, BinlogStart.FilePosition start, bool skipMarked)
    {
        await using var client = new BinlogClient(new BinlogClientOptions(await binlog.EndpointAsync())
        {
            Start = start,
            Tables = new HashSet<string> { $"{database}.t_osc_new", $"{database}.m" },
            SkipMarkedEvents = skipMarked,
        });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        int rows = 0;
        await foreach (BinlogEvent e in client.ReadEventsAsync(timeout.Token))
        {
            if (e is RowsEvent r && r.Table.Database == database)
            {
                if (r.Table.Table == "m")
                {
                    return rows;
                }

                rows += r.Table.Table == "t_osc_new" ? r.Rows.Length : 0;
            }
        }

        throw new InvalidOperationException("The stream ended before the insert into m.");
    }

    private static async Task WaitForReplicaAsync(string primary, string replica)
    {
        await using var connection = new MySqlConnection(primary);
        await connection.OpenAsync();
        await using var status = new MySqlCommand("SHOW MASTER STATUS", connection);
        string file;
        long position;
        await using (MySqlDataReader reader = await status.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            file = reader.GetString(0);
            position = reader.GetInt64(1);
        }

        string waited = await ScalarAsync(replica, $"SELECT MASTER_POS_WAIT('{file}', {position}, 60)");
        Assert.True(long.TryParse(waited, out long events) && events >= 0, $"the replica did not reach {file}:{position} ({waited})");
    }

    /// <summary>auto marks the copy only when every binlog reader is a known replica: streams of earlier tests must be gone.</summary>
    private static async Task WaitUntilTheReplicaIsTheOnlyReaderAsync(string primary)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await ScalarAsync(primary, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'") != "1")
        {
            Assert.True(DateTime.UtcNow < deadline, "binlog readers other than the replica stayed connected");
            await Task.Delay(200);
        }
    }

    private static async Task SetReplicaFilterAsync(string replica, string setting) =>
        await ExecuteAsync(replica, $"STOP SLAVE; SET GLOBAL replicate_events_marked_for_skip = {setting}; START SLAVE");
}
