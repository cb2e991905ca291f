using MySqlConnector;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Copy;

/// <summary>
/// Copies key ranges of the original into the shadow table with INSERT ... SELECT. Rows already in the shadow (the
/// applier got there first) are left alone: ON DUPLICATE KEY UPDATE with a no-op, rather than INSERT IGNORE, which
/// would also turn a value that does not fit the new type into a silently clipped one.
/// </summary>
/// <remarks>
/// Two ways to read, both argued in docs/correctness.md:
/// <list type="bullet">
/// <item>With a <c>commitMarker</c> table (the online ALTER, whose applier waits on a <see cref="CopyFence"/>): a
/// plain READ COMMITTED read that takes no lock on the original, so application writes never wait on the copy. Just
/// before reading, the chunk commits a write to the marker table: engine commits follow binlog order, so every
/// transaction the replay has already received is visible to the read.</item>
/// <item>Without one: the SELECT takes shared locks on the range (LOCK IN SHARE MODE) for the chunk's transaction, so a
/// concurrent change commits either before the read or after the chunk, never in between.</item>
/// </list>
/// With <c>markSkipReplication</c> (MariaDB) the chunk's insert, not its marker, is logged under skip_replication, so
/// osc's own binlog stream is not sent the copied rows (<see cref="Replication.CopyEventFilter"/>).
/// </remarks>
public sealed class MySqlCopySource(string connectionString, TableName original, TableName shadow, MySqlKeyPredicate key, ColumnMapping mapping,
    TableName? commitMarker = null, bool markSkipReplication = false)
    : ICopySource, IKeySpanSource
{
    /// <summary>The bookkeeping table's row the copy writes before each read (heartbeats are row 1, checkpoints row 2).</summary>
    public const int CommitMarkerId = 3;

    public Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, CancellationToken cancellationToken) =>
        FindChunkEndAsync(afterKey, rows, null, cancellationToken);

    public async Task<KeySpan?> ReadKeySpanAsync(CancellationToken cancellationToken)
    {
        if (key.Columns.Count != 1)
        {
            return null;
        }

        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new MySqlCommand(
            $"SELECT MIN({key.ColumnList}), MAX({key.ColumnList}), " +
            "(SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(@s, DATABASE()) AND TABLE_NAME = @t) " +
            $"FROM {MySqlSql.Quote(original)}", connection);
        command.Parameters.AddWithValue("@s", original.Schema);
        command.Parameters.AddWithValue("@t", original.Name);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) && !reader.IsDBNull(0) && !reader.IsDBNull(2)
            ? new KeySpan(reader.GetValue(0), reader.GetValue(1), Convert.ToInt64(reader.GetValue(2), System.Globalization.CultureInfo.InvariantCulture))
            : null;
    }

    /// <summary>The key <paramref name="rows"/> rows after <paramref name="afterKey"/>, or null when fewer rows lie before <paramref name="before"/> (or the end).</summary>
    public async Task<RowKey?> FindChunkEndAsync(RowKey? afterKey, int rows, RowKey? before, CancellationToken cancellationToken)
    {
        await using var connection = new MySqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        var conditions = new List<string>();
        if (afterKey is not null)
        {
            conditions.Add(key.Compare(afterKey, ">", command, "a"));
        }

        if (before is not null)
        {
            conditions.Add(key.Compare(before, "<", command, "b"));
        }

        string where = conditions.Count == 0 ? "" : "WHERE " + string.Join(" AND ", conditions);
        command.CommandText = $"SELECT {key.ColumnList} FROM {MySqlSql.Quote(original)} {key.ForceIndex} {where} ORDER BY {key.ColumnList} LIMIT 1 OFFSET {rows - 1}";
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
        string copy =
            $"INSERT INTO {MySqlSql.Quote(shadow)} ({targets}) SELECT {sources} FROM {MySqlSql.Quote(original)} {key.ForceIndex} {where} " +
            $"ORDER BY {key.ColumnList}{(commitMarker is null ? " LOCK IN SHARE MODE" : "")} ON DUPLICATE KEY UPDATE {firstKey} = {firstKey}";
        command.CommandTimeout = 600;
        // UUID() makes the marker row change every time: a write that changes nothing would not be binlogged, and
        // only a binlogged commit is ordered after the transactions before it.
        await using (var setup = new MySqlCommand(MySqlShadowWrites.SessionSetup + (commitMarker is null ? "" :
                         "; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; " +
                         $"INSERT INTO {MySqlSql.Quote(commitMarker)} (id, ts, value) VALUES ({CommitMarkerId}, NOW(6), UUID()) " +
                         "ON DUPLICATE KEY UPDATE ts = NOW(6), value = UUID()" + (markSkipReplication ? "; SET SESSION skip_replication = 1" : "")), connection))
        {
            await setup.ExecuteNonQueryAsync(cancellationToken);
        }

        command.CommandText = copy;
        try
        {
            // With the driver's found-rows default, every row the range covered counts, new or already in the shadow:
            // the measure chunk sizing and progress want.
            return await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (MySqlException e) when (MySqlShadowWrites.DoesNotFit(e))
        {
            throw MySqlShadowWrites.Explain(e, $"a row of {original} with a key {range.Describe()}");
        }
    }
}
