using System.Text.RegularExpressions;
using OnlineSchemaChange.LocalServers;
using Xunit.Abstractions;

namespace OnlineSchemaChange.IntegrationTests.LocalServers;

/// <summary>A server that cannot start says why, with its log, and leaves nothing behind.</summary>
[Collection(nameof(StartFailureTests))]
public sealed partial class StartFailureTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_MariaDb_that_fails_to_start_reports_its_log_and_leaves_no_directory()
    {
        var error = await Assert.ThrowsAsync<LocalServerException>(async () =>
            await (await LocalMariaDb.StartAsync(new MariaDbOptions { ExtraArguments = ["--no-such-option=1"] })).DisposeAsync());
        output.WriteLine(error.Message);

        Assert.Contains("MariaDB primary", error.Message, StringComparison.Ordinal);
        Assert.Contains("did not start", error.Message, StringComparison.Ordinal);
        Assert.Contains("server.log", error.Message, StringComparison.Ordinal);
        Assert.Contains("no-such-option", error.Message, StringComparison.Ordinal); // mariadbd's own complaint, from the log
        Assert.False(Directory.Exists(DirectoryIn(error)));
    }

    [Fact]
    public async Task A_Postgres_that_fails_to_start_reports_its_log_and_leaves_no_directory()
    {
        var error = await Assert.ThrowsAsync<LocalServerException>(async () =>
            await (await LocalPostgres.StartAsync(new PostgresOptions { Settings = new Dictionary<string, string> { ["no_such_setting"] = "1" } })).DisposeAsync());
        output.WriteLine(error.Message);

        Assert.Contains("PostgreSQL primary", error.Message, StringComparison.Ordinal);
        Assert.Contains("server.log", error.Message, StringComparison.Ordinal);
        Assert.Contains("no_such_setting", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(DirectoryIn(error)));
    }

    [Fact]
    public async Task A_missing_binary_points_at_tools_setup()
    {
        var error = await Assert.ThrowsAsync<LocalServerException>(async () =>
            await (await LocalPostgres.StartAsync(new PostgresOptions { BinDirectory = "/nonexistent/postgresql/bin" })).DisposeAsync());
        output.WriteLine(error.Message);

        Assert.Contains("tools/setup", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_start_whose_owner_is_already_gone_fails_at_once_and_says_so()
    {
        using var owner = System.Diagnostics.Process.Start("true")!;
        await owner.WaitForExitAsync();
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<LocalServerException>(async () =>
            await (await LocalPostgres.StartAsync(new PostgresOptions { OwnerProcessId = owner.Id })).DisposeAsync());
        output.WriteLine(error.Message);

        Assert.Contains($"owner process {owner.Id} is gone", error.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
        Assert.False(Directory.Exists(DirectoryIn(error)));
    }

    // Runs in a collection of its own, without parallel neighbours, since it can only count directories.
    [Fact]
    public async Task Cancelling_a_start_leaves_no_server_behind()
    {
        var before = Leftovers("osc-postgres-primary-");
        // Cancelled once the start has made its directory, so mid-start however fast the machine starts a server (a
        // fixed delay let a fast one finish first).
        using var cancel = new CancellationTokenSource();
        Task started = Task.Run(async () =>
        {
            await using LocalPostgres server = await LocalPostgres.StartAsync(cancellationToken: cancel.Token);
        });
        while (!started.IsCompleted && Leftovers("osc-postgres-primary-").SequenceEqual(before))
        {
            await Task.Delay(1);
        }

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => started);

        Assert.Equal(before, Leftovers("osc-postgres-primary-"));
    }

    private static string DirectoryIn(LocalServerException error) =>
        ServerDirectory().Match(error.Message) is { Success: true } match ? match.Groups[1].Value : throw new InvalidOperationException(error.Message);

    [GeneratedRegex(@"\((/[^)]*osc-[a-z]+-primary-[^)]*)\)")]
    private static partial Regex ServerDirectory();

    private static string[] Leftovers(string prefix) =>
        [.. Directory.GetDirectories(Path.GetTempPath(), prefix + "*").Order(StringComparer.Ordinal)];
}

/// <summary>Serial: the cancellation test counts temporary directories, which parallel tests would disturb.</summary>
[CollectionDefinition(nameof(StartFailureTests), DisableParallelization = true)]
public sealed class StartFailureSerialDefinition;
