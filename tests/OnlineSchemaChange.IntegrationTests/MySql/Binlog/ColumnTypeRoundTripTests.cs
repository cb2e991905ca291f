using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;

using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>For every column type: edge values written by SQL, streamed back as a replica, must equal what SELECT
/// returns for the same rows.</summary>
[Collection("servers")]
public sealed class ColumnTypeRoundTripTests(ServersFixture servers)
{
    private readonly BinlogTestServer fixture = new(servers);

    public static TheoryData<string, string[]> Types => new()
    {
        { "TINYINT", ["-128", "127", "0"] },
        { "TINYINT UNSIGNED", ["0", "255"] },
        { "SMALLINT", ["-32768", "32767"] },
        { "SMALLINT UNSIGNED", ["65535"] },
        { "MEDIUMINT", ["-8388608", "8388607"] },
        { "MEDIUMINT UNSIGNED", ["16777215"] },
        { "INT", ["-2147483648", "2147483647"] },
        { "INT UNSIGNED", ["4294967295"] },
        { "BIGINT", ["-9223372036854775808", "9223372036854775807"] },
        { "BIGINT UNSIGNED", ["18446744073709551615"] },
        { "FLOAT", ["-3.402823466E+38", "1.175494351E-38", "0.1"] },
        { "DOUBLE", ["-1.7976931348623157E+308", "2.2250738585072014E-308", "0.1"] },
        { "DECIMAL(10,2)", ["-99999999.99", "0.01", "0"] },
        { "DECIMAL(28,10)", ["-999999999999999999.9999999999"] },
        { "DECIMAL(65,30)", ["-99999999999999999999999999999999999.999999999999999999999999999999", "0.000000000000000000000000000001"] },
        { "DECIMAL(65,0)", ["99999999999999999999999999999999999999999999999999999999999999999"] },
        { "BIT(1)", ["b'1'", "b'0'"] },
        { "BIT(64)", ["b'1111111111111111111111111111111111111111111111111111111111111111'"] },
        { "BIT(13)", ["b'1010101010101'"] },
        { "DATE", ["'1000-01-01'", "'9999-12-31'", "'0000-00-00'", "'2024-00-00'"] },
        { "DATETIME", ["'1000-01-01 00:00:00'", "'9999-12-31 23:59:59'", "'0000-00-00 00:00:00'"] },
        { "DATETIME(1)", ["'2024-02-29 12:34:56.7'"] },
        { "DATETIME(3)", ["'2024-02-29 12:34:56.789'"] },
        { "DATETIME(6)", ["'9999-12-31 23:59:59.999999'", "'1970-01-01 00:00:00.000001'"] },
        { "TIMESTAMP(6) NULL", ["'1970-01-01 00:00:01.000000'", "'2038-01-19 03:14:07.999999'", "'0000-00-00 00:00:00'"] },
        { "TIMESTAMP NULL", ["'2001-02-03 04:05:06'"] },
        { "TIME", ["'-838:59:59'", "'838:59:59'", "'00:00:00'"] },
        { "TIME(2)", ["'-00:00:00.01'", "'-12:34:56.78'"] },
        { "TIME(4)", ["'-00:00:01.0001'"] },
        { "TIME(6)", ["'-838:59:58.999999'", "'838:59:58.000001'"] },
        { "YEAR", ["1901", "2155", "0"] },
        { "CHAR(10) CHARACTER SET latin1", ["'abc'", "''", "'Ýü'"] },
        { "CHAR(255) CHARACTER SET utf8mb4", ["REPEAT('€', 255)", "'x'"] },
        { "CHAR(64) CHARACTER SET utf8mb4", ["REPEAT('😀', 64)"] },
        { "VARCHAR(10) CHARACTER SET utf8mb4", ["'😀ü'", "''"] },
        { "VARCHAR(300) CHARACTER SET utf8mb4", ["REPEAT('ž', 300)"] },
        { "VARCHAR(70) CHARACTER SET ascii", ["'plain'"] },
        { "BINARY(4)", ["0x00", "0x01020304", "''"] },
        { "VARBINARY(300)", ["REPEAT(0xFF, 300)", "0x00"] },
        { "TINYBLOB", ["0x0001FF"] },
        { "BLOB", ["REPEAT('b', 3000)"] },
        { "MEDIUMBLOB", ["REPEAT('m', 70000)"] },
        { "LONGBLOB", ["REPEAT('l', 100)"] },
        { "TINYTEXT CHARACTER SET utf8mb4", ["'t😀'"] },
        { "TEXT CHARACTER SET utf8mb4", ["REPEAT('é', 20000)"] },
        { "MEDIUMTEXT CHARACTER SET utf8mb4", ["REPEAT('m', 70000)"] },
        { "LONGTEXT CHARACTER SET utf8mb4", ["'long'"] },
        { "ENUM('a','b c','d''e')", ["'a'", "'d''e'", "'b c'"] },
        { "SET('x','y','z')", ["''", "'x,z'", "'x,y,z'"] },
        { "JSON", ["'{\"a\": [1, 2.5, \"s\", null, true], \"b\": {}}'", "'[]'"] },
        { "GEOMETRY", ["ST_GeomFromText('POINT(1 2)')", "ST_GeomFromText('LINESTRING(0 0,1 1,2 5)')"] },
    };

    [Theory]
    [MemberData(nameof(Types))]
    public async Task Decoded_rows_equal_what_select_returns(string columnType, string[] values)
    {
        var db = await fixture.NewDatabaseAsync("types");
        await fixture.ExecuteAsync($"SET SESSION sql_mode = ''; CREATE TABLE t (id INT PRIMARY KEY, v {columnType} NULL)", db);
        var start = await fixture.CurrentPositionAsync();
        var inserts = string.Join(", ", values.Select((v, i) => $"({i + 1}, {v})").Append($"({values.Length + 1}, NULL)"));
        await fixture.ExecuteAsync($"SET SESSION sql_mode = ''; SET time_zone = '+00:00'; INSERT INTO t VALUES {inserts}", db);

        await using var client = new BinlogClient(new BinlogClientOptions(await fixture.EndpointAsync()) { Start = start, Tables = new HashSet<string> { db + ".t" } });
        var events = await BinlogTestServer.ReadRowsAsync(client, db, values.Length + 1, TimeSpan.FromSeconds(30));
        var decoded = events.SelectMany(e => e.Rows).Select(r => r.After!).ToList();
        Assert.All(events, e => Assert.Equal("v", e.ColumnName(1)));

        await using var connection = await fixture.OpenAsync(db);
        // The text column is MySQL's own rendering: exact for DECIMAL, the float's exact value as a double, hex for GEOMETRY.
        var textExpression = columnType switch
        {
            "GEOMETRY" => "HEX(v)",
            "FLOAT" => "CAST(v AS DOUBLE)",
            _ => "CAST(v AS CHAR)",
        };
        await using var command = new MySqlCommand($"SELECT id, v, {textExpression} FROM t ORDER BY id", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var index = 0;
        while (await reader.ReadAsync())
        {
            var row = decoded[index++];
            Assert.Equal(reader.GetInt32(0), row[0]);
            // MySqlConnector cannot read DECIMALs beyond System.Decimal; those are compared as text only.
            var selected = reader.IsDBNull(1) ? null : columnType.StartsWith("DECIMAL", StringComparison.Ordinal) ? DBNull.Value : reader.GetValue(1);
            if (selected is MySqlDateTime { IsValidDateTime: true } mysqlDateTime)
            {
                selected = mysqlDateTime.GetDateTime();
            }

            var text = reader.IsDBNull(2) ? null : Convert.ToString(reader.GetValue(2), CultureInfo.InvariantCulture);
            AssertSame(columnType, selected, text, row[1]);
        }

        Assert.Equal(values.Length + 1, index);
    }

    private static void AssertSame(string columnType, object? selected, string? text, object? decoded)
    {
        var what = $"{columnType}: SELECT gave {selected ?? "NULL"} ({text}), binlog gave {decoded ?? "NULL"} ({decoded?.GetType().Name})";
        switch (decoded)
        {
            case null:
                Assert.True(selected is null, what);
                break;
            case MySqlDateTimeParts parts:
                Assert.True(text is not null && text.StartsWith(parts.ToString(), StringComparison.Ordinal), what);
                break;
            case DateOnly date:
                Assert.True(selected is DateTime dt && DateOnly.FromDateTime(dt) == date, what);
                break;
            case DateTimeOffset timestamp:
                Assert.True(selected is DateTime ts && ts.Ticks == timestamp.UtcTicks, what);
                break;
            case decimal d:
                Assert.True(text == d.ToString(CultureInfo.InvariantCulture), what);
                break;
            case ExactDecimal big:
                Assert.True(text == big.ToString(), what);
                break;
            case int year when columnType == "YEAR":
                Assert.True(Convert.ToInt32(selected, CultureInfo.InvariantCulture) == year, what);
                break;
            case float f:
                Assert.True(text is not null && double.Parse(text, CultureInfo.InvariantCulture) == f, what);
                break;
            case byte[] bytes when columnType == "GEOMETRY":
                Assert.True(text == Convert.ToHexString(bytes), what);
                break;
            case byte[] bytes:
                Assert.True(selected is byte[] s && s.AsSpan().SequenceEqual(bytes), what);
                break;
            default:
                Assert.True(Equals(selected, decoded), what);
                break;
        }
    }
}
