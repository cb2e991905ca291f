using System.Diagnostics;
using System.Globalization;
using System.Text;
using MySqlConnector;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Replication;

using OnlineSchemaChange.IntegrationTests.Infrastructure;

namespace OnlineSchemaChange.IntegrationTests.MySql.Binlog;

/// <summary>Our decoding (as a replica) of a binlog file written by a random multi-table workload must list the same row changes,
/// with the same values, as MariaDB's own decoder (mariadb-binlog --base64-output=DECODE-ROWS --verbose).</summary>
[Collection("servers")]
public sealed class MariaDbBinlogDifferentialTests(ServersFixture servers)
{
    private readonly BinlogTestServer fixture = new(servers);

    [Fact]
    public async Task Random_workload_decodes_like_mariadb_binlog()
    {
        var db = await fixture.NewDatabaseAsync("diff");
        await fixture.ExecuteAsync(
            "CREATE TABLE a (id INT PRIMARY KEY, n BIGINT, s VARCHAR(40), d DECIMAL(12,3)); " +
            "CREATE TABLE b (id INT PRIMARY KEY, u INT UNSIGNED, t DATETIME, m MEDIUMINT); " +
            "CREATE TABLE c (id INT PRIMARY KEY, v VARCHAR(300), y SMALLINT UNSIGNED)", db);
        await fixture.ExecuteAsync("FLUSH BINARY LOGS");
        var file = (await fixture.CurrentPositionAsync()).File;

        var random = new Random(1125);
        await using (var connection = await fixture.OpenAsync(db))
        {
            var ids = new Dictionary<string, List<int>> { ["a"] = [], ["b"] = [], ["c"] = [] };
            var next = 1;
            for (var i = 0; i < 300; i++)
            {
                var table = "abc"[random.Next(3)].ToString();
                var existing = ids[table];
                var choice = random.Next(10);
                var batch = random.Next(4) == 0;
                var sql = new StringBuilder(batch ? "BEGIN; " : "");
                for (var s = 0; s < (batch ? random.Next(2, 6) : 1); s++)
                {
                    if (choice < 5 || existing.Count == 0)
                    {
                        var id = next++;
                        existing.Add(id);
                        sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO {table} VALUES ({id}, {Values(table, random)}); ");
                    }
                    else if (choice < 8)
                    {
                        var id = existing[random.Next(existing.Count)];
                        sql.Append(CultureInfo.InvariantCulture, $"UPDATE {table} SET {Assignments(table, random)} WHERE id = {id}; ");
                    }
                    else
                    {
                        var id = existing[random.Next(existing.Count)];
                        existing.Remove(id);
                        sql.Append(CultureInfo.InvariantCulture, $"DELETE FROM {table} WHERE id = {id}; ");
                    }
                }

                if (batch)
                {
                    sql.Append("COMMIT;");
                }

                await using var command = new MySqlCommand(sql.ToString(), connection);
                await command.ExecuteNonQueryAsync();
            }
        }

        await fixture.ExecuteAsync("FLUSH BINARY LOGS");
        // Both sides read the closed file from the server: ours as a replica, mariadb-binlog with --read-from-remote-server.
        var endpoint = await fixture.EndpointAsync();
        var ours = new List<string>();
        await using (var client = new BinlogClient(new BinlogClientOptions(endpoint) { Start = new BinlogStart.FilePosition(file, 4) }))
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await foreach (var e in client.ReadEventsAsync(cts.Token))
            {
                if (e is RotateEvent rotate && rotate.NextFile != file)
                {
                    break; // the end of the file FLUSH BINARY LOGS closed
                }

                if (e is RowsEvent rows && rows.Table.Database == db)
                {
                    foreach (var change in rows.Rows)
                    {
                        ours.Add(Describe(rows, change));
                    }
                }
            }
        }

        var theirs = await MariaDbBinlogAsync(endpoint, file, db);
        Assert.True(theirs.Count > 300, $"the workload should have produced row changes, mariadb-binlog listed {theirs.Count}");
        Assert.Equal(theirs.Count, ours.Count);
        for (var i = 0; i < ours.Count; i++)
        {
            Assert.Equal(theirs[i], ours[i]);
        }
    }

    private static string Values(string table, Random random) => table switch
    {
        "a" => $"{random.NextInt64(long.MinValue, long.MaxValue)}, {Text(random, 40)}, {Decimal(random)}",
        "b" => $"{(uint)random.NextInt64(0, uint.MaxValue)}, {DateTimeLiteral(random)}, {random.Next(-8388608, 8388607)}",
        _ => $"{Text(random, 300)}, {random.Next(0, 65536)}",
    };

    private static string Assignments(string table, Random random) => table switch
    {
        "a" => $"n = {(random.Next(5) == 0 ? "NULL" : random.NextInt64(-1000, 1000).ToString(CultureInfo.InvariantCulture))}, d = {Decimal(random)}",
        "b" => $"u = {(uint)random.NextInt64(0, uint.MaxValue)}, t = {DateTimeLiteral(random)}",
        _ => $"v = {Text(random, 300)}",
    };

    private static string Text(Random random, int max)
    {
        if (random.Next(8) == 0)
        {
            return "NULL";
        }

        const string Alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
        return "'" + new string([.. Enumerable.Range(0, random.Next(0, max)).Select(_ => Alphabet[random.Next(Alphabet.Length)])]).TrimEnd() + "x'";
    }

    private static string Decimal(Random random) =>
        random.Next(6) == 0 ? "NULL" : (random.NextInt64(-999_999_999_999, 999_999_999_999) / 1000m).ToString(CultureInfo.InvariantCulture);

    private static string DateTimeLiteral(Random random) =>
        "'" + new DateTime(2000, 1, 1).AddSeconds(random.NextInt64(0, 30L * 365 * 86400)).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "'";

    private static string Describe(RowsEvent rows, RowChange change)
    {
        var table = $"`{rows.Table.Database}`.`{rows.Table.Table}`";
        return rows.Kind switch
        {
            RowsEventKind.Insert => $"INSERT INTO {table} SET {Image(change.After!)}",
            RowsEventKind.Update => $"UPDATE {table} WHERE {Image(change.Before!)} SET {Image(change.After!)}",
            _ => $"DELETE FROM {table} WHERE {Image(change.Before!)}",
        };
    }

    private static string Image(object?[] values) => string.Join(" ", values.Select((v, i) => $"@{i + 1}={Text(v)}"));

    /// <summary>Values as mariadb-binlog --verbose prints them, its "(unsigned)" alternative dropped.</summary>
    private static string Text(object? value) => value switch
    {
        null => "NULL",
        string s => "'" + s + "'",
        DateTime d => "'" + d.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "'",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString()!,
    };

    private static async Task<List<string>> MariaDbBinlogAsync(OnlineSchemaChange.MySql.Protocol.MySqlEndpoint endpoint, string file, string db)
    {
        var start = new ProcessStartInfo("mariadb-binlog",
        [
            "--no-defaults", "--read-from-remote-server", $"--host={endpoint.Host}", $"--port={endpoint.Port}", $"--user={endpoint.User}",
            $"--password={endpoint.Password}", "--base64-output=DECODE-ROWS", "--verbose", file,
        ])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.Equal(0, process.ExitCode);

        var changes = new List<string>();
        StringBuilder? current = null;
        var unsignedColumns = new HashSet<string>(StringComparer.Ordinal) { "b@2", "c@3" };
        string? tableName = null;
        foreach (var raw in output.Split('\n'))
        {
            if (!raw.StartsWith("### ", StringComparison.Ordinal))
            {
                continue;
            }

            var line = raw[4..].TrimEnd();
            if (line.StartsWith("INSERT INTO ", StringComparison.Ordinal) || line.StartsWith("UPDATE ", StringComparison.Ordinal) || line.StartsWith("DELETE FROM ", StringComparison.Ordinal))
            {
                if (current is not null)
                {
                    changes.Add(current.ToString());
                }

                current = line.Contains($"`{db}`.", StringComparison.Ordinal) ? new StringBuilder(line) : null;
                tableName = line[(line.LastIndexOf('`', line.Length - 2) + 1)..^1];
            }
            else if (current is not null && line is "SET" or "WHERE")
            {
                current.Append(' ').Append(line);
            }
            else if (current is not null && line.StartsWith("  @", StringComparison.Ordinal))
            {
                var assignment = line.Trim();
                var equals = assignment.IndexOf('=', StringComparison.Ordinal);
                var column = assignment[..equals];
                var value = assignment[(equals + 1)..];
                // Integers print signed, with the unsigned reading in parentheses when they differ.
                var paren = value.IndexOf(" (", StringComparison.Ordinal);
                if (paren > 0 && !value.StartsWith('\''))
                {
                    value = unsignedColumns.Contains(tableName + column) ? value[(paren + 2)..^1] : value[..paren];
                }

                current.Append(current[^1] is 'T' or 'E' ? " " : " ").Append(column).Append('=').Append(value);
            }
        }

        if (current is not null)
        {
            changes.Add(current.ToString());
        }

        return changes;
    }
}
