using System.CommandLine;
using System.Text;
using System.Text.Json;
using OnlineSchemaChange.Cli.Commands;

namespace OnlineSchemaChange.Tests.MySql;

public sealed class BinlogCommandTests
{
    private static readonly string CapturePath = Path.Combine(AppContext.BaseDirectory, "MySql", "Data", "mariadb-10.11-types.binlog");

    private static async Task<(int Exit, string Output)> RunAsync(params string[] args)
    {
        using var output = new MemoryStream();
        var root = new RootCommand { BinlogCommand.Create(() => new NonClosing(output)) };
        var exit = await root.Parse(["binlog", .. args]).InvokeAsync();
        return (exit, Encoding.UTF8.GetString(output.ToArray()));
    }

    // The capture's statements (see CapturedBinlogTests) change 9 rows of cap.types: 1 + 1 inserts, 1 update,
    // 2 inserts and 1 delete in one transaction, 3 deletes after an ALTER.
    [Fact]
    public async Task File_mode_prints_one_json_line_per_changed_row()
    {
        var (exit, output) = await RunAsync("--file", CapturePath, "--json");
        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["insert", "insert", "update", "insert", "insert", "delete", "delete", "delete", "delete"], lines.Select(l => l.GetProperty("type").GetString()));
        Assert.All(lines, l => Assert.Equal("types", l.GetProperty("table").GetString()));
        var update = lines[2];
        Assert.Equal(-128, update.GetProperty("before").GetProperty("@2").GetInt32());
        Assert.Equal(5, update.GetProperty("after").GetProperty("@2").GetInt32());
        Assert.Equal("updated", update.GetProperty("after").GetProperty("@17").GetString());
        Assert.Equal("-123456789012345678901234567890.0123456789", update.GetProperty("after").GetProperty("@10").GetRawText());
        Assert.Equal("-838:59:58.990000", update.GetProperty("after").GetProperty("@13").GetString());
        Assert.Equal(lines[3].GetProperty("gtid").GetString(), lines[5].GetProperty("gtid").GetString());
    }

    [Fact]
    public async Task Table_filter_and_argument_errors()
    {
        var (exit, output) = await RunAsync("--file", CapturePath, "--json", "--tables", "cap.other");
        Assert.Equal(0, exit);
        Assert.Equal("", output);
        Assert.NotEqual(0, (await RunAsync()).Exit);
        Assert.NotEqual(0, (await RunAsync("mysql://u@h", "--start", "f:4", "--gtid", "0-1-1")).Exit);
    }

    private sealed class NonClosing(Stream inner) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    }
}
