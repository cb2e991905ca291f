using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.IntegrationTests.Postgres;

namespace OnlineSchemaChange.IntegrationTests;

/// <summary>An operator steers a running migration through its control socket, on both engines.</summary>
[Collection("servers")]
public sealed class ControlSocketTests(ServersFixture servers)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task An_operator_pauses_the_copy_holds_and_releases_the_swap_on_MariaDB()
    {
        (string connectionString, string uri) = await MariaDbTableAsync();
        using var flag = new FlagFile("control-throttle");
        string socket = SocketPath();
        LiveOscRun run = StartHeld(uri, flag, socket, "--chunk-time-millis", "100");
        await run.WaitForEventAsync(e => Event(e) == "control-socket" && e.GetProperty("path").GetString() == socket, Patience, "the socket");

        // A dry run meanwhile names the live run, instead of calling its shadow an unfinished run's leftover.
        await run.WaitForThrottledAsync("flag file", Patience);
        OscRunner.Result dryRun = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL");
        Assert.Equal(1, dryRun.ExitCode);
        Assert.Contains("is in progress", dryRun.Stderr, StringComparison.Ordinal);

        Assert.StartsWith("ok the copy is paused", await SendAsync(socket, "throttle"), StringComparison.Ordinal);
        Assert.Equal("ok workers=1", await SendAsync(socket, "workers=1"));
        Assert.Equal("ok workers=3", await SendAsync(socket, "workers=3"));
        Assert.Equal("ok workers=1", await SendAsync(socket, "workers=1"));
        Assert.StartsWith("error: workers takes 1 to 16", await SendAsync(socket, "workers=17"), StringComparison.Ordinal);
        flag.Lift();
        await run.WaitForThrottledAsync("by the operator", Patience);
        Assert.StartsWith("ok", await SendAsync(socket, "postpone-cut-over"), StringComparison.Ordinal);
        Assert.StartsWith("ok", await SendAsync(socket, "no-throttle"), StringComparison.Ordinal);
        await run.WaitForEventAsync(e => Event(e) == "phase" && e.GetProperty("phase").GetString() == "postponed by the operator (control socket)", Patience, "the postponed swap");

        string status = await SendAsync(socket, "status");
        Assert.Contains("state postponed by the operator", status, StringComparison.Ordinal);
        Assert.Contains("rows copied 3,000 of", status, StringComparison.Ordinal);
        Assert.Contains("cut-over-postponed=yes", status, StringComparison.Ordinal);
        Assert.Equal("int", await ScalarAsync(connectionString, "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));

        Assert.StartsWith("ok the swap may go", await SendAsync(socket, "unpostpone"), StringComparison.Ordinal);
        OscRunner.Result result = await run.Completion.WaitAsync(Patience);

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("bigint", await ScalarAsync(connectionString, "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.False(File.Exists(socket), "the socket is removed when the run ends");
        Assert.Contains(run.JsonEvents, e => Event(e) == "control" && e.GetProperty("command").GetString() == "throttle");
    }

    [Fact]
    public async Task Abort_stops_the_run_as_ctrl_c_does_and_the_original_is_untouched()
    {
        (string connectionString, string uri) = await MariaDbTableAsync();
        using var flag = new FlagFile("control-abort");
        string socket = SocketPath();
        LiveOscRun run = StartHeld(uri, flag, socket, "--cleanup-on-abort");
        await run.WaitForThrottledAsync("flag file", Patience);

        Assert.StartsWith("ok stopping", await SendAsync(socket, "abort"), StringComparison.Ordinal);
        OscRunner.Result result = await run.Completion.WaitAsync(Patience);

        Assert.Equal(130, result.ExitCode);
        Assert.False(File.Exists(socket));
        Assert.Equal("3000", await ScalarAsync(connectionString, "SELECT COUNT(*) FROM t"));
        Assert.Equal("int", await ScalarAsync(connectionString, "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
        Assert.Equal("", await ScalarAsync(connectionString, "SELECT COALESCE(GROUP_CONCAT(TABLE_NAME), '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 't\\_osc\\_%'"));
    }

    [Fact]
    public async Task A_socket_left_by_a_killed_run_is_removed_by_cleanup_or_replaced_and_a_live_one_is_refused()
    {
        (string connectionString, string uri) = await MariaDbTableAsync();
        using var flag = new FlagFile("control-kill");

        // The dry run names the path a real run will use, and opens no socket of its own.
        OscRunner.Result dryRun = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--json");
        string planned = dryRun.Json.GetProperty("controlSocket").GetString()!;
        Assert.False(File.Exists(planned));
        OscRunner.Result withoutSocket = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--json", "--control-socket", "none");
        Assert.False(withoutSocket.Json.TryGetProperty("controlSocket", out _));
        string socket;
        await using (var osc = OscProcess.Start(uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--throttle-flag-file", flag.Path))
        {
            // The default path, as the run announces it.
            const string announced = "echo help | nc -U ";
            var deadline = DateTime.UtcNow + Patience;
            while (!osc.Stderr.Contains(announced, StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline && !osc.HasExited, $"no socket: {osc.Stderr}");
                await Task.Delay(50);
            }

            socket = osc.Stderr.Split('\n').First(l => l.Contains(announced, StringComparison.Ordinal)).Split(announced)[1].Trim();
            Assert.StartsWith(Path.GetTempPath(), socket, StringComparison.Ordinal);
            Assert.EndsWith(".t.sock", socket, StringComparison.Ordinal);
            Assert.Equal(planned, socket);

            // `osc control` finds the socket from the connection and table alone.
            OscRunner.Result status = await OscRunner.RunAsync("control", "status", uri, "--table", "t");
            Assert.True(status.ExitCode == 0, status.Stderr);
            Assert.Contains("state ", status.Stdout, StringComparison.Ordinal);
            Assert.Equal(1, (await OscRunner.RunAsync("control", "chunk-time-millis=fast", uri, "--table", "t")).ExitCode);

            // Live: a second run on the same socket is refused before it creates anything of its own.
            OscRunner.Result refused = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute");
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("Another process listens on the control socket", refused.Stderr, StringComparison.Ordinal);
            osc.Kill();
            await osc.WaitForExitAsync(Patience);
        }

        Assert.True(File.Exists(socket), "kill -9 leaves the socket file");
        OscRunner.Result nobody = await OscRunner.RunAsync("control", "status", "--socket", socket);
        Assert.Equal(1, nobody.ExitCode);
        Assert.Contains("No run answers on", nobody.Stderr, StringComparison.Ordinal);
        OscRunner.Result cleanup = await OscRunner.RunAsync("cleanup", uri, "--table", "t");
        Assert.True(cleanup.ExitCode == 0, cleanup.Stderr);
        Assert.Contains(socket, cleanup.Stdout, StringComparison.Ordinal);
        Assert.False(File.Exists(socket));
        flag.Lift();

        // A dead socket at an explicit path is replaced by the next run.
        string other = SocketPath();
        await using (var osc = OscProcess.Start(uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--throttle-flag-file", flag.Path, "--control-socket", other))
        {
            await File.WriteAllTextAsync(flag.Path, "");
            var deadline = DateTime.UtcNow + Patience;
            while (!File.Exists(other))
            {
                Assert.True(DateTime.UtcNow < deadline && !osc.HasExited, $"no socket: {osc.Stderr}");
                await Task.Delay(50);
            }

            osc.Kill();
            await osc.WaitForExitAsync(Patience);
        }

        Assert.True(File.Exists(other));
        flag.Lift();
        Assert.Equal(0, (await OscRunner.RunAsync("cleanup", uri, "--table", "t")).ExitCode);
        Assert.True(File.Exists(other), "cleanup removes the default path only");
        OscRunner.Result result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--control-socket", other);

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.False(File.Exists(other));
        Assert.Equal("bigint", await ScalarAsync(connectionString, "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'"));
    }

    [Fact]
    public async Task A_path_that_is_not_a_socket_is_never_removed()
    {
        (_, string uri) = await MariaDbTableAsync();
        string file = Path.Combine(Path.GetTempPath(), $"osc-control-{Guid.NewGuid():N}.txt");
        await File.WriteAllTextAsync(file, "the operator's notes");
        try
        {
            OscRunner.Result result = await OscRunner.RunAsync("alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--control-socket", file);

            Assert.Equal(1, result.ExitCode);
            Assert.Contains("is not a socket osc left", result.Stderr, StringComparison.Ordinal);
            Assert.Equal("the operator's notes", await File.ReadAllTextAsync(file));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task An_operator_holds_and_releases_the_swap_on_PostgreSQL()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("control");
        await PgSql.ExecuteAsync(connectionString, "CREATE TABLE t (id bigint PRIMARY KEY, k int NOT NULL); INSERT INTO t SELECT g, g FROM generate_series(1, 3000) g; ANALYZE t;");
        using var flag = new FlagFile("control-pg");
        string socket = SocketPath();
        LiveOscRun run = LiveOscRun.Start("alter", PgSql.OscUri(connectionString), "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint", "--execute", "--json",
            "--throttle-flag-file", flag.Path, "--control-socket", socket);
        await run.WaitForThrottledAsync("flag file", Patience);

        OscRunner.Result dryRun = await OscRunner.RunAsync("alter", PgSql.OscUri(connectionString), "--table", "t", "--alter", "ALTER COLUMN k TYPE bigint");
        Assert.Equal(1, dryRun.ExitCode);
        Assert.Contains("is in progress", dryRun.Stderr, StringComparison.Ordinal);

        Assert.StartsWith("ok", await SendAsync(socket, "postpone-cut-over"), StringComparison.Ordinal);
        Assert.Equal("ok max-lag-millis=900", await SendAsync(socket, "max-lag-millis=900"));
        flag.Lift();
        await run.WaitForEventAsync(e => Event(e) == "phase" && e.GetProperty("phase").GetString() == "postponed by the operator (control socket)", Patience, "the postponed swap");
        Assert.Contains("max-lag-millis=900", await SendAsync(socket, "status"), StringComparison.Ordinal);

        await SendAsync(socket, "unpostpone");
        OscRunner.Result result = await run.Completion.WaitAsync(Patience);

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("bigint", await PgSql.ScalarAsync(connectionString, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'k'"));
        Assert.False(File.Exists(socket));
        Assert.Equal("", await PgSql.LeftoversAsync(connectionString));
    }

    /// <summary>A MariaDB run of the usual ALTER, held by <paramref name="flag"/> before its first chunk, listening on <paramref name="socket"/>.</summary>
    private static LiveOscRun StartHeld(string uri, FlagFile flag, string socket, params string[] extra) =>
        LiveOscRun.Start(["alter", uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--json",
            "--throttle-flag-file", flag.Path, "--control-socket", socket, .. extra]);

    private static string SocketPath() => Path.Combine(Path.GetTempPath(), $"osc-test-{Guid.NewGuid():N}.sock");

    private static string? Event(JsonElement e) => e.TryGetProperty("event", out JsonElement name) ? name.GetString() : null;

    /// <summary>What an operator's `echo line | nc -U socket` does.</summary>
    private static async Task<string> SendAsync(string socket, string line)
    {
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(socket));
        await using var stream = new NetworkStream(client);
        await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"));
        client.Shutdown(SocketShutdown.Send);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return (await reader.ReadToEndAsync()).TrimEnd('\n');
    }

    private async Task<(string ConnectionString, string Uri)> MariaDbTableAsync()
    {
        string connectionString = await servers.NewMySqlDatabaseAsync("control");
        await MySqlTestSql.ExecuteAsync(connectionString, "CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL); INSERT INTO t SELECT seq, seq FROM seq_1_to_3000;");
        var builder = new MySqlConnectionStringBuilder(connectionString);
        return (connectionString, $"mysql://{builder.UserID}:{builder.Password}@{builder.Server}:{builder.Port}/{builder.Database}");
    }

    private static Task<string> ScalarAsync(string connectionString, string sql) => MySqlTestSql.ScalarAsync(connectionString, sql);
}
