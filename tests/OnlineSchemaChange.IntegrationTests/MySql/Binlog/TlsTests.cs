using System.Diagnostics;
using System.Security.Authentication;
using OnlineSchemaChange.LocalServers;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Protocol;
using OnlineSchemaChange.MySql.Replication;

using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>TLS through SslStream against a MariaDB started with a self-signed certificate made here.</summary>
[Collection("servers")]
public sealed class TlsTests(ServersFixture servers)
{
    private readonly BinlogTestServer fixture = new(servers);

    private static async Task<(string Cert, string Key, string Directory)> SelfSignedCertificateAsync()
    {
        var directory = Directory.CreateTempSubdirectory("osc-tls-").FullName;
        var cert = Path.Combine(directory, "server.pem");
        var key = Path.Combine(directory, "server.key");
        using var openssl = Process.Start(new ProcessStartInfo("openssl",
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        await openssl.WaitForExitAsync();
        Assert.Equal(0, openssl.ExitCode);
        return (cert, key, directory);
    }

    [Fact]
    public async Task Replication_over_tls()
    {
        var (cert, key, directory) = await SelfSignedCertificateAsync();
        try
        {
            await using var server = await LocalMariaDb.StartAsync(new MariaDbOptions { ExtraArguments = [$"--ssl-cert={cert}", $"--ssl-key={key}"] });
            var endpoint = new MySqlEndpoint("127.0.0.1", server.Port, server.Options.User, server.Options.Password)
            {
                Tls = TlsMode.Required,
                TrustServerCertificate = true,
            };

            await using (var connection = await MySqlProtocolConnection.ConnectAsync(endpoint, CancellationToken.None))
            {
                Assert.True(connection.IsEncrypted);
                var cipher = await connection.QueryAsync("SHOW SESSION STATUS LIKE 'Ssl_cipher'", CancellationToken.None);
                Assert.False(string.IsNullOrEmpty(cipher.Rows[0][1]), "the server should see a TLS cipher on this session");
                await connection.ExecuteAsync("CREATE DATABASE tls", CancellationToken.None);
                await connection.ExecuteAsync("CREATE TABLE tls.t (id INT PRIMARY KEY, s VARCHAR(10))", CancellationToken.None);
            }

            var start = await StartPositionAsync(endpoint);
            await using (var writer = await MySqlProtocolConnection.ConnectAsync(endpoint, CancellationToken.None))
            {
                await writer.ExecuteAsync("INSERT INTO tls.t VALUES (1, 'secure')", CancellationToken.None);
            }

            await using var client = new BinlogClient(new BinlogClientOptions(endpoint) { Start = start });
            var rows = await BinlogTestServer.ReadRowsAsync(client, "tls", 1, TimeSpan.FromSeconds(30));
            Assert.Equal(new object?[] { 1, "secure" }, rows[0].Rows[0].After);

            // The certificate is self-signed: without opting in, it is refused.
            await Assert.ThrowsAsync<AuthenticationException>(() =>
                MySqlProtocolConnection.ConnectAsync(endpoint with { TrustServerCertificate = false }, CancellationToken.None));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Required_tls_against_a_server_without_it_fails_clearly()
    {
        var endpoint = await fixture.EndpointAsync();
        var ex = await Assert.ThrowsAsync<MySqlProtocolException>(() =>
            MySqlProtocolConnection.ConnectAsync(endpoint with { Tls = TlsMode.Required }, CancellationToken.None));
        Assert.Contains("TLS is required", ex.Message, StringComparison.Ordinal);
    }

    private static async Task<BinlogStart.FilePosition> StartPositionAsync(MySqlEndpoint endpoint)
    {
        await using var connection = await MySqlProtocolConnection.ConnectAsync(endpoint, CancellationToken.None);
        var status = await connection.QueryAsync("SHOW MASTER STATUS", CancellationToken.None);
        return new BinlogStart.FilePosition(status.Rows[0][0]!, uint.Parse(status.Rows[0][1]!, System.Globalization.CultureInfo.InvariantCulture));
    }
}
