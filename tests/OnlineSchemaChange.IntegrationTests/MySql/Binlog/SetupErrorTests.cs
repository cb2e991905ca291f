using OnlineSchemaChange.LocalServers;
using OnlineSchemaChange.MySql.Protocol;
using OnlineSchemaChange.MySql.Replication;

using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>Misconfigurations fail at once with a message that says what to fix; none is retried.</summary>
[Collection("servers")]
public sealed class SetupErrorTests(ServersFixture servers)
{
    private readonly BinlogTestServer fixture = new(servers);

    private static async Task<ReplicationSetupException> FirstEventFailsAsync(BinlogClientOptions options)
    {
        await using var client = new BinlogClient(options with { MaxReconnectAttempts = 0 });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await Assert.ThrowsAsync<ReplicationSetupException>(async () =>
        {
            await foreach (var _ in client.ReadEventsAsync(cts.Token))
            {
            }
        });
    }

    [Fact]
    public async Task Wrong_password()
    {
        var ex = await FirstEventFailsAsync(new BinlogClientOptions((await fixture.EndpointAsync()) with { Password = "not-it" }));
        Assert.Contains("wrong user or password", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Missing_replication_grant()
    {
        var user = "norepl" + Environment.TickCount64 % 100000;
        await fixture.ExecuteAsync($"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO '{user}'@'%'");
        var start = await fixture.CurrentPositionAsync();
        var ex = await FirstEventFailsAsync(new BinlogClientOptions((await fixture.EndpointAsync()) with { User = user, Password = "pw" }) { Start = start });
        Assert.Contains("REPLICATION SLAVE", ex.Message, StringComparison.Ordinal);
        var noStart = await FirstEventFailsAsync(new BinlogClientOptions((await fixture.EndpointAsync()) with { User = user, Password = "pw" }));
        Assert.Contains("REPLICATION CLIENT", noStart.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("binlog_format", "STATEMENT", "ROW", "binlog_format=ROW")]
    [InlineData("binlog_row_image", "MINIMAL", "FULL", "binlog_row_image=FULL")]
    public async Task Wrong_binlog_settings(string variable, string wrong, string right, string expected)
    {
        await fixture.ExecuteAsync($"SET GLOBAL {variable} = '{wrong}'");
        try
        {
            var ex = await FirstEventFailsAsync(new BinlogClientOptions(await fixture.EndpointAsync()));
            Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            await fixture.ExecuteAsync($"SET GLOBAL {variable} = '{right}'");
        }
    }

    [Fact]
    public async Task Binary_log_off()
    {
        await using var server = await LocalMariaDb.StartAsync(new MariaDbOptions { ExtraArguments = ["--skip-log-bin"] });
        var endpoint = new MySqlEndpoint("127.0.0.1", server.Port, server.Options.User, server.Options.Password) { Tls = TlsMode.Disabled };
        var ex = await FirstEventFailsAsync(new BinlogClientOptions(endpoint));
        Assert.Contains("Binary logging is off", ex.Message, StringComparison.Ordinal);
    }
}
