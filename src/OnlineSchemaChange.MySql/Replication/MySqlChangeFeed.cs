using System.Threading.Channels;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.MySql.Binlog;
using CoreRowChange = OnlineSchemaChange.Core.Changes.RowChange;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>
/// Feeds the applier from the binlog: each changed row of the migrated table becomes a <see cref="CoreRowChange"/>
/// keyed by the table's key columns, and every transaction end (ours or not) a position, so the applier's position
/// keeps moving even while only other tables are written. Values become what MySqlConnector can bind.
/// </summary>
public sealed class MySqlChangeFeed(IAsyncEnumerable<BinlogEvent> events, string database, string table, IReadOnlyList<int> keyIndexes)
{
    public long RowsSeen { get; private set; }

    public async Task RunAsync(ChannelWriter<ReplicationMessage> writer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(writer);
        try
        {
            await foreach (BinlogEvent e in events.WithCancellation(cancellationToken))
            {
                switch (e)
                {
                    case RowsEvent rows when rows.Table.Table == table && rows.Table.Database == database:
                        foreach (Binlog.RowChange row in rows.Rows)
                        {
                            RowsSeen++;
                            await writer.WriteAsync(new RowChangeMessage(Convert(rows.Kind, row)), cancellationToken);
                        }

                        break;
                    // A transaction's end, or a statement that is its own transaction (DDL): either way, everything up
                    // to here is complete. Without the DDL case a drain on a quiet server would wait for a commit that
                    // never comes.
                    case XidEvent:
                    case QueryEvent q when !q.IsBegin && !IsInsideTransaction(q.Sql):
                        await writer.WriteAsync(new PositionMessage(new MySqlBinlogPosition(e.Coordinates.File, e.Coordinates.Position)), cancellationToken);
                        break;
                }
            }

            writer.TryComplete();
        }
        catch (Exception error)
        {
            writer.TryComplete(error);
            throw;
        }
    }

    private static bool IsInsideTransaction(string sql) =>
        sql.StartsWith("SAVEPOINT", StringComparison.OrdinalIgnoreCase) || sql.StartsWith("ROLLBACK TO", StringComparison.OrdinalIgnoreCase)
        || sql.StartsWith("RELEASE SAVEPOINT", StringComparison.OrdinalIgnoreCase);

    private CoreRowChange Convert(RowsEventKind kind, Binlog.RowChange row) => kind switch
    {
        RowsEventKind.Insert => CoreRowChange.Insert(Key(row.After!), Bindable(row.After!)),
        RowsEventKind.Update => CoreRowChange.Update(Key(row.Before!), Key(row.After!), Bindable(row.After!)),
        RowsEventKind.Delete => CoreRowChange.Delete(Key(row.Before!)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown rows event kind"),
    };

    private RowKey Key(object?[] row)
    {
        var values = new object?[keyIndexes.Count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = Bindable(row[keyIndexes[i]]);
        }

        return new RowKey(values);
    }

    private static object?[] Bindable(object?[] row)
    {
        for (int i = 0; i < row.Length; i++)
        {
            row[i] = Bindable(row[i]);
        }

        return row;
    }

    // Decimals beyond System.Decimal and zero dates have exact text forms the server parses back losslessly.
    private static object? Bindable(object? value) => value switch
    {
        ExactDecimal d => d.ToString(),
        MySqlDateTimeParts t => t.ToString(),
        _ => value,
    };
}
