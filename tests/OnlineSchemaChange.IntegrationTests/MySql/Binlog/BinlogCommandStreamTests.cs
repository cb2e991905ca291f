using System.CommandLine;
using System.Text;
using System.Text.Json;
using OnlineSchemaChange.Cli.Commands;
using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

[Collection("servers")]
public sealed class BinlogCommandStreamTests(ServersFixture servers)
{
    private readonly BinlogTestServer fixture = new(servers);

    /// <summary>osc binlog URI --start FILE:POS --tables db.t --json streams typed JSON lines until cancelled.</summary>
    [Fact]
    public async Task Streams_json_lines_of_one_table()
    {
        var db = await fixture.NewDatabaseAsync("cli");
        await fixture.ExecuteAsync("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2)); CREATE TABLE other (id INT PRIMARY KEY)", db);
        var start = await fixture.CurrentPositionAsync();
        await fixture.ExecuteAsync("INSERT INTO other VALUES (1); INSERT INTO t VALUES (1, 'Käse', 12.50); UPDATE t SET price = 13.00 WHERE id = 1", db);
        var endpoint = await fixture.EndpointAsync();
        var uri = $"mysql://{endpoint.User}:{endpoint.Password}@{endpoint.Host}:{endpoint.Port}/?tls=disabled";

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var output = new LineCountingStream(2, cts);
        var root = new RootCommand { BinlogCommand.Create(() => output) };
        var exit = await root.Parse(["binlog", uri, "--start", $"{start.File}:{start.Position}", "--tables", $"{db}.t", "--json"])
            .InvokeAsync(cancellationToken: cts.Token);

        Assert.Equal(0, exit);
        var lines = output.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, lines.Count);
        Assert.Equal("insert", lines[0].GetProperty("type").GetString());
        Assert.Equal("Käse", lines[0].GetProperty("after").GetProperty("name").GetString());
        Assert.Equal("update", lines[1].GetProperty("type").GetString());
        Assert.Equal(12.50m, lines[1].GetProperty("before").GetProperty("price").GetDecimal());
        Assert.Equal("13.00", lines[1].GetProperty("after").GetProperty("price").GetRawText());
        Assert.All(lines, l => Assert.Equal("t", l.GetProperty("table").GetString()));
    }

    /// <summary>Collects what the command writes and cancels it once enough lines have arrived.</summary>
    private sealed class LineCountingStream(int lines, CancellationTokenSource done) : Stream
    {
        private readonly MemoryStream _buffer = new();
        private int _lines;

        public string Text
        {
            get
            {
                lock (_buffer)
                {
                    return Encoding.UTF8.GetString(_buffer.ToArray());
                }
            }
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (_buffer)
            {
                _buffer.Write(buffer, offset, count);
                _lines += buffer.AsSpan(offset, count).Count((byte)'\n');
                if (_lines >= lines)
                {
                    done.Cancel();
                }
            }
        }
    }
}
