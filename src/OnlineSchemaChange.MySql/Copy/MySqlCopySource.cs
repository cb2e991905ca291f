using MySqlConnector;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Copy;

/// <summary>
/// Copies key ranges of the original into the shadow table with INSERT ... SELECT. The SELECT takes shared locks on
/// the range's rows (LOCK IN SHARE MODE) for the chunk's short transaction, so a concurrent change to one of those
/// rows commits either before the chunk reads it (the chunk copies the new version) or after the chunk commits (the
/// applier replays it on top): never in between, which is what could resurrect a deleted row. Rows already in the
/// shadow (the applier got there first) are left alone: ON DUPLICATE KEY UPDATE with a no-op, rather than INSERT
/// IGNORE, which would also turn a value that does not fit the new type into a silently clipped one.
/// </summary>
public sealed class MySqlCopySource(string connectionString, TableName original, TableName shadow, MySqlKeyPredicate key, ColumnMapping mapping)
    : ICopySource
{
    public async Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        string where = afterKey is null ? "" : "WHERE " + key.Compare(afterKey, ">", command, "a");
        command.CommandText = $"SELECT {key.ColumnList} FROM {MySqlSql.Quote(original)} FORCE INDEX (PRIMARY) {where} ORDER BY {key.ColumnList} LIMIT 1 OFFSET {rows - 1}";
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? key.Read(reader) : null;
    }

    public Task<long> CopyRangeAsync(KeyRange range, CancellationToken cancellationToken) =>
        MySqlRetry.RunAsync(() => CopyOnceAsync(range, cancellationToken), cancellationToken);

    private async Task<long> CopyOnceAsync(KeyRange range, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(range);
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        var conditions = new List<string>();
        if (range.LowerExclusive is not null)
        {
            conditions.Add(key.Compare(range.LowerExclusive, ">", command, "lo"));
        }

        if (range.UpperInclusive is not null)
        {
            conditions.Add(key.Compare(range.UpperInclusive, "<=", command, "hi"));
        }

        string where = conditions.Count == 0 ? "" : "WHERE " + string.Join(" AND ", conditions);
        string targets = string.Join(", ", mapping.TargetColumns.Select(MySqlSql.Quote));
        string sources = string.Join(", ", mapping.SourceColumns.Select(MySqlSql.Quote));
        // Qualified: inside INSERT ... SELECT a bare column name is ambiguous between the two tables.
        string firstKey = MySqlSql.Quote(shadow) + "." + MySqlSql.Quote(mapping.Pairs.First(p => p.Source.Equals(key.Columns[0], StringComparison.OrdinalIgnoreCase)).Target);
        command.CommandText =
            $"INSERT INTO {MySqlSql.Quote(shadow)} ({targets}) SELECT {sources} FROM {MySqlSql.Quote(original)} FORCE INDEX (PRIMARY) {where} " +
            $"ORDER BY {key.ColumnList} LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE {firstKey} = {firstKey}";
        command.CommandTimeout = 600;

        // With the driver's found-rows default, every row the range covered counts, new or already in the shadow:
        // the measure chunk sizing and progress want.
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
