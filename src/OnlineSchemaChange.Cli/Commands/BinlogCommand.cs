using System.CommandLine;
using System.Text.Json;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Protocol;
using OnlineSchemaChange.MySql.Replication;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>osc binlog: streams decoded row events from a server as a replica, or decodes a binlog file.</summary>
internal static class BinlogCommand
{
    public static Command Create() => Create(Console.OpenStandardOutput);

    /// <summary>With the output stream given, so tests can read what the command prints.</summary>
    internal static Command Create(Func<Stream> openOutput)
    {
        var connection = new Argument<string?>("connection")
        {
            Description = "mysql://user@host:port/db (password from OSC_PASSWORD, MYSQL_PWD or ~/.my.cnf); with --file, optional, used only for column names",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var start = new Option<string?>("--start") { Description = "Start at FILE:POS (default: the server's current position)" };
        var gtid = new Option<string?>("--gtid") { Description = "Start after a GTID set (MySQL uuid:1-5 or MariaDB domain-server-seq,...)" };
        var tables = new Option<string?>("--tables") { Description = "Only rows of these tables: db.t,db.u (db.* for a whole schema)" };
        var json = SharedOptions.Json("One JSON object per changed row");
        var file = new Option<FileInfo?>("--file") { Description = "Decode a binlog file from disk instead of a server" };
        var serverId = new Option<uint>("--server-id") { Description = "Replica server id to register with", DefaultValueFactory = _ => 0x0C5C0001 };

        var command = new Command("binlog", "Stream decoded binlog row events (as a replica) or decode a binlog file")
        {
            connection, start, gtid, tables, json, file, serverId,
        };
        command.Validators.Add(result =>
        {
            var hasFile = result.GetValue(file) is not null;
            if (!hasFile && result.GetValue(connection) is null)
            {
                result.AddError("Give a connection URI or --file PATH.");
            }

            if (result.GetValue(start) is not null && result.GetValue(gtid) is not null)
            {
                result.AddError("--start and --gtid are exclusive.");
            }

            if (hasFile && (result.GetValue(start) is not null || result.GetValue(gtid) is not null))
            {
                result.AddError("--start and --gtid apply to a server stream, not to --file.");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var tableSet = parse.GetValue(tables) is { } list
                ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal)
                : null;
            using var output = new BinlogOutput(openOutput(), parse.GetValue(json), tableSet);
            try
            {
                var endpoint = parse.GetValue(connection) is { } uri ? WithPassword(MySqlEndpoint.Parse(uri), uri) : null;
                if (parse.GetValue(file) is { } path)
                {
                    await DecodeFileAsync(path.FullName, endpoint, output, cancellationToken);
                    return 0;
                }

                var options = new BinlogClientOptions(endpoint!)
                {
                    ServerId = parse.GetValue(serverId),
                    Tables = tableSet,
                    Start = parse.GetValue(start) is { } s ? BinlogStart.Parse(s) : parse.GetValue(gtid) is { } g ? BinlogStart.FromGtid(g) : BinlogStart.Current,
                };
                await using var client = new BinlogClient(options);
                await foreach (var e in client.ReadEventsAsync(cancellationToken))
                {
                    output.Write(e);
                }

                return 0;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return 0;
            }
            catch (Exception e) when (e is ReplicationSetupException or BinlogStreamException or MySqlServerException or BinlogDecodeException or MySqlProtocolException or FormatException or IOException or System.Net.Sockets.SocketException)
            {
                await Console.Error.WriteLineAsync("osc binlog: " + e.Message);
                return 1;
            }
            finally
            {
                output.Flush();
            }
        });
        return command;
    }

    /// <summary>A password not in the URI comes from the same places as for every other command.</summary>
    private static MySqlEndpoint WithPassword(MySqlEndpoint endpoint, string uri)
    {
        var target = Core.Connection.ConnectionTarget.ParseUri(uri);
        if (target.Password is not null)
        {
            return endpoint;
        }

        var resolved = Core.Connection.PasswordResolver.Resolve(target, ConnectionOptions.PasswordSources(target.Engine));
        return endpoint with { Password = resolved.Password ?? "" };
    }

    private static async Task DecodeFileAsync(string path, MySqlEndpoint? endpoint, BinlogOutput output, CancellationToken cancellationToken)
    {
        await using var schemas = endpoint is null ? null : new InformationSchemaTables(endpoint);
        Func<TableMapEvent, CancellationToken, Task>? load = schemas is null ? null
            : (map, ct) => schemas.IsLoaded(map.Database, map.Table) ? Task.CompletedTask : schemas.LoadAsync(map.Database, map.Table, ct);
        await foreach (var e in BinlogFileReader.ReadAsync(path, schemas, load, cancellationToken))
        {
            output.Write(e);
        }
    }

    /// <summary>JSON lines of row changes, or one readable line per event.</summary>
    private sealed class BinlogOutput(Stream stdout, bool asJson, IReadOnlySet<string>? tables) : IDisposable
    {
        private readonly Utf8JsonWriter _json = new(stdout, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        private readonly StreamWriter _text = new(stdout) { AutoFlush = false };

        public void Write(BinlogEvent e)
        {
            if (e is RowsEvent rows && tables is not null && !tables.Contains(rows.Table.Database + "." + rows.Table.Table) && !tables.Contains(rows.Table.Database + ".*"))
            {
                return;
            }

            if (asJson)
            {
                if (e is RowsEvent r)
                {
                    foreach (var change in r.Rows)
                    {
                        RowEventJson.Write(_json, r, change);
                        _json.Flush();
                        stdout.WriteByte((byte)'\n');
                        _json.Reset();
                    }

                    stdout.Flush();
                }

                return;
            }

            _text.WriteLine(Describe(e));
            if (e is RowsEvent or XidEvent or XaPrepareEvent or HeartbeatEvent)
            {
                _text.Flush();
            }
        }

        public void Flush()
        {
            _text.Flush();
            stdout.Flush();
        }

        public void Dispose()
        {
            _json.Dispose();
            _text.Dispose();
        }

        private static string Describe(BinlogEvent e)
        {
            var at = e.Coordinates.ToString();
            return e switch
            {
                RowsEvent r => $"{at} {r.Kind} {r.Table.Database}.{r.Table.Table} {r.Rows.Length} row(s)",
                QueryEvent q => $"{at} QUERY [{q.Database}] {q.Sql}",
                TableMapEvent m => $"{at} TABLE_MAP {m.TableId} {m.Database}.{m.Table} ({m.ColumnCount} columns)",
                RotateEvent r => $"{at} ROTATE {r.NextFile}:{r.Position}",
                XidEvent x => $"{at} XID {x.Xid}",
                XaPrepareEvent p => p.OnePhase ? $"{at} XA COMMIT {p.Xid} ONE PHASE" : $"{at} XA PREPARE {p.Xid}",
                MariaDbGtidEvent g => $"{at} GTID {g.Gtid}",
                MySqlGtidEvent g => $"{at} GTID {g.Gtid}",
                _ => $"{at} {e.Header.EventType}",
            };
        }
    }
}
