using System.Threading.Channels;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.MySql.Binlog;
using CoreRowChange = OnlineSchemaChange.Core.Changes.RowChange;

namespace OnlineSchemaChange.MySql.Replication;

/// <summary>
/// Feeds the applier from the binlog: each changed row of the migrated table becomes a <see cref="CoreRowChange"/>
/// keyed by the table's key columns, and every transaction end (ours or not) a position, so the applier's position
/// keeps moving even while only other tables are written. Rows stream as they arrive, before their transaction's
/// commit is read, and a position is sent only at a transaction's end: the applier publishes nothing inside one.
/// Values become what MySqlConnector can bind.
/// </summary>
public sealed class MySqlChangeFeed(IAsyncEnumerable<BinlogEvent> events, string database, string table, IReadOnlyList<int> keyIndexes)
{
    public long RowsSeen { get; private set; }

    public async Task RunAsync(ChannelWriter<ReplicationMessage> writer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var boundaries = new TransactionBoundaries();
        bool xaRows = false;
        try
        {
            await foreach (BinlogEvent e in events.WithCancellation(cancellationToken))
            {
                TransactionStep step = boundaries.Observe(e);
                if (e is RowsEvent rows && rows.Table.Table == table && rows.Table.Database == database)
                {
                    xaRows |= boundaries.InXa;
                    foreach (Binlog.RowChange row in rows.Rows)
                    {
                        RowsSeen++;
                        await writer.WriteAsync(new RowChangeMessage(Convert(rows.Kind, row)), cancellationToken);
                    }

                    continue;
                }

                switch (step)
                {
                    case TransactionStep.Prepared when xaRows:
                        // Logged at XA PREPARE, these rows may yet be rolled back, and until XA COMMIT no read sees
                        // them: replaying them now could leave the shadow with rows the table never has.
                        throw new OscException(
                            $"A two-phase XA transaction (XA PREPARE at {e.Coordinates}) changed {database}.{table} during the migration; its rows are in the binlog before it commits or rolls back, and the replay cannot apply them safely.",
                            "Run the migration while no XA transaction writes the table (XA COMMIT ... ONE PHASE is fine), after `osc cleanup` for this table.");
                    // A transaction's end, or a statement that is its own transaction (DDL): either way, everything up
                    // to here is complete. Without the DDL case a drain on a quiet server would wait for a commit that
                    // never comes. An XA prepare without our rows ends a group too.
                    case TransactionStep.Commit or TransactionStep.Statement or TransactionStep.Prepared:
                        xaRows = false;
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
