using System.Text;
using OnlineSchemaChange.MySql.Binlog;
using OnlineSchemaChange.MySql.Protocol;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>Column names, signedness, character sets and ENUM/SET members from information_schema, cached per table
/// and dropped after DDL. Loading is async and happens when a TABLE_MAP arrives, before that table's rows.</summary>
public sealed class InformationSchemaTables : ITableSchemaProvider, IAsyncDisposable
{
    private readonly MySqlEndpoint _endpoint;
    private readonly Dictionary<(string, string), TableSchema?> _cache = [];
    private MySqlProtocolConnection? _connection;

    public InformationSchemaTables(MySqlEndpoint endpoint) => _endpoint = endpoint with { Database = null };

    public TableSchema? Find(string database, string table) => _cache.GetValueOrDefault((database, table));

    public bool IsLoaded(string database, string table) => _cache.ContainsKey((database, table));

    public void Invalidate() => _cache.Clear();

    public async Task LoadAsync(string database, string table, CancellationToken cancellationToken)
    {
        TextResultSet result;
        try
        {
            _connection ??= await MySqlProtocolConnection.ConnectAsync(_endpoint, cancellationToken);
            result = await _connection.QueryAsync(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS " +
                $"WHERE TABLE_SCHEMA = {Quote(database)} AND TABLE_NAME = {Quote(table)} ORDER BY ORDINAL_POSITION", cancellationToken);
        }
        catch (Exception e) when (e is IOException or EndOfStreamException or System.Net.Sockets.SocketException)
        {
            // The lookup connection died (idle timeout, server restart): reconnect once.
            await DisposeConnectionAsync();
            _connection = await MySqlProtocolConnection.ConnectAsync(_endpoint, cancellationToken);
            result = await _connection.QueryAsync(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS " +
                $"WHERE TABLE_SCHEMA = {Quote(database)} AND TABLE_NAME = {Quote(table)} ORDER BY ORDINAL_POSITION", cancellationToken);
        }

        var columns = result.Rows.Select(r => ToColumn(r[0]!, r[1]!, r[2]!, r[3])).ToList();
        _cache[(database, table)] = columns.Count == 0 ? null : new TableSchema(database, table, columns);
    }

    public static ColumnSchema ToColumn(string name, string dataType, string columnType, string? characterSet)
    {
        var type = dataType.ToLowerInvariant();
        var members = type is "enum" or "set" ? ParseMembers(columnType) : null;
        return new ColumnSchema(name, type, columnType.Contains("unsigned", StringComparison.OrdinalIgnoreCase), characterSet, members);
    }

    /// <summary>enum('a','it''s') → [a, it's]: members are quoted with doubled quotes (and backslashes escaped).</summary>
    public static IReadOnlyList<string> ParseMembers(string columnType)
    {
        var members = new List<string>();
        var open = columnType.IndexOf('(', StringComparison.Ordinal);
        var i = open + 1;
        while (i > 0 && i < columnType.Length)
        {
            if (columnType[i] != '\'')
            {
                i++;
                continue;
            }

            var member = new StringBuilder();
            i++;
            while (i < columnType.Length)
            {
                var c = columnType[i];
                if (c == '\'' && i + 1 < columnType.Length && columnType[i + 1] == '\'')
                {
                    member.Append('\'');
                    i += 2;
                }
                else if (c == '\\' && i + 1 < columnType.Length)
                {
                    member.Append(columnType[i + 1]);
                    i += 2;
                }
                else if (c == '\'')
                {
                    i++;
                    break;
                }
                else
                {
                    member.Append(c);
                    i++;
                }
            }

            members.Add(member.ToString());
        }

        return members;
    }

    public static string Quote(string value) => "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'";

    private async Task DisposeConnectionAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    public async ValueTask DisposeAsync() => await DisposeConnectionAsync();
}
