using OnlineSchemaChange.IntegrationTests.Infrastructure;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>--hooks-path on a real migration: a before-cut-over hook vetoes the swap, then the resumed run tells the success hook.</summary>
[Collection("servers")]
public sealed class MySqlHookTests(ServersFixture servers) : IDisposable
{
    private readonly string hooks = Directory.CreateTempSubdirectory("osc-hooks-").FullName;

    public void Dispose() => Directory.Delete(hooks, recursive: true);

    [Fact]
    public async Task A_failing_before_cut_over_hook_stops_the_swap_and_the_other_hooks_hear_of_each_step()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "hooks", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL);
            INSERT INTO t SELECT seq, seq FROM seq_1_to_1000;
            """);
        string log = Path.Combine(hooks, "events.log");
        foreach (string hookEvent in new[] { "startup", "before-cut-over", "success", "failure" })
        {
            Hook($"osc-on-{hookEvent}", $"echo \"$OSC_EVENT $OSC_ENGINE $OSC_SCHEMA.$OSC_TABLE rows=$OSC_ROWS_COPIED error=$OSC_ERROR\" >> {log}");
        }

        Hook("osc-on-before-cut-over-veto", "echo replica maintenance in progress; exit 4");
        OscRunner.Result vetoed = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--hooks-path", hooks);

        Assert.Equal(1, vetoed.ExitCode);
        Assert.Contains("The before-cut-over hook osc-on-before-cut-over-veto exited with code 4.", vetoed.Stderr, StringComparison.Ordinal);
        Assert.Contains("hook osc-on-before-cut-over-veto: replica maintenance in progress", vetoed.Stderr, StringComparison.Ordinal);
        Assert.Equal("int(11)", await ColumnTypeAsync(db));
        Assert.Equal([
            $"startup mysql {db.Name}.t rows= error=",
            $"before-cut-over mysql {db.Name}.t rows= error=",
            $"failure mysql {db.Name}.t rows= error=The before-cut-over hook osc-on-before-cut-over-veto exited with code 4."], File.ReadAllLines(log));

        File.Delete(Path.Combine(hooks, "osc-on-before-cut-over-veto"));
        File.Delete(log);
        OscRunner.Result resumed = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--execute", "--resume", "--hooks-path", hooks);

        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("bigint(20)", await ColumnTypeAsync(db));
        string[] events = File.ReadAllLines(log);
        Assert.Equal(["startup", "before-cut-over", "success"], events.Select(e => e.Split(' ')[0]));
        Assert.StartsWith($"success mysql {db.Name}.t rows=", events[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_catalog_change_run_natively_tells_the_hooks_so_and_a_before_cut_over_veto_stops_it_unchanged()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "hooks_native", """
            CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL);
            INSERT INTO t SELECT seq, seq FROM seq_1_to_1000;
            """);
        string log = Path.Combine(hooks, "events.log");
        foreach (string hookEvent in new[] { "startup", "before-cut-over", "success", "failure" })
        {
            Hook($"osc-on-{hookEvent}", $"echo \"$OSC_EVENT method=$OSC_METHOD rows=$OSC_ROWS_COPIED\" >> {log}");
        }

        Hook("osc-on-before-cut-over-veto", "exit 3");
        string[] run = ["alter", db.Uri, "--table", "t", "--alter", "ADD COLUMN note INT", "--execute", "--no-replica-discovery", "--hooks-path", hooks];
        OscRunner.Result vetoed = await OscRunner.RunAsync(run);

        Assert.Equal(1, vetoed.ExitCode);
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'note'"));
        Assert.Equal(["startup method= rows=", "before-cut-over method= rows=", "failure method= rows="], File.ReadAllLines(log));

        File.Delete(Path.Combine(hooks, "osc-on-before-cut-over-veto"));
        File.Delete(log);
        OscRunner.Result ran = await OscRunner.RunAsync(run);

        Assert.True(ran.ExitCode == 0, ran.Stderr);
        Assert.Equal(["startup method= rows=", "before-cut-over method= rows=", "success method=instant rows=0"], File.ReadAllLines(log));
        Assert.Equal("", await db.OscTablesAsync());
    }

    private void Hook(string name, string body)
    {
        string path = Path.Combine(hooks, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private static Task<string> ColumnTypeAsync(OscTestDatabase db) => ScalarAsync(db.ConnectionString,
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'k'");
}
