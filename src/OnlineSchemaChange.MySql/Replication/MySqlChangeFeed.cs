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
/// A two-phase XA transaction is the exception: its rows are logged at XA PREPARE, before it commits or rolls back,
/// so they are held (<see cref="PreparedXa"/>) and passed on at its XA COMMIT, as one transaction at the commit's
/// place in the stream, or dropped at its XA ROLLBACK; the positions sent meanwhile carry the start of the oldest
/// held one, the point a resume must start from (docs/correctness.md). Values become what MySqlConnector can bind.
/// </summary>
public sealed class MySqlChangeFeed(IAsyncEnumerable<BinlogEvent> events, string database, string table, IReadOnlyList<int> keyIndexes,
    PreparedXaTransactions? preparedXa = null, MySqlTableChangeGuard? changeGuard = null)
{
    public long RowsSeen { get; private set; }

    /// <summary>The prepared XA transactions read and not yet completed, with the rows of the table they hold.</summary>
    public PreparedXaTransactions PreparedXa { get; } = preparedXa ?? new PreparedXaTransactions();

    public async Task RunAsync(ChannelWriter<ReplicationMessage> writer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var boundaries = new TransactionBoundaries();
        string name = $"{database}.{table}";

        // The open XA group's rows of the table, and where the group begins: kept until its end says what they are.
        List<CoreRowChange>? xaRows = null;
        MySqlBinlogPosition? xaStart = null;
        try
        {
            await foreach (BinlogEvent e in events.WithCancellation(cancellationToken))
            {
                TransactionStep step = boundaries.Observe(e);
                if (step == TransactionStep.Inside && boundaries.InXa && xaRows is null)
                {
                    xaRows = [];
                    xaStart = boundaries.GroupStart is { } g ? new MySqlBinlogPosition(g.File, g.Position) : new MySqlBinlogPosition(e.Coordinates.File, 4);
                }
                else if (step == TransactionStep.Inside && !boundaries.InXa)
                {
                    xaRows = null; // an XA group that never ended (none should): nothing of it committed
                }

                if (e is RowsEvent rows && rows.Table.Table == table && rows.Table.Database == database)
                {
                    if (xaRows is not null)
                    {
                        PreparedXa.EnsureRoom(xaRows.Count + rows.Rows.Length, name);
                    }

                    foreach (Binlog.RowChange row in rows.Rows)
                    {
                        RowsSeen++;
                        CoreRowChange change = Convert(rows.Kind, row);
                        if (xaRows is not null)
                        {
                            xaRows.Add(change);
                        }
                        else
                        {
                            await writer.WriteAsync(new RowChangeMessage(change), cancellationToken);
                        }
                    }

                    continue;
                }

                switch (step)
                {
                    case TransactionStep.Prepared when e is XaPrepareEvent prepare:
                        // Logged at XA PREPARE, these rows may yet be rolled back, and until XA COMMIT no read sees
                        // them: they wait for the transaction's outcome. Its position is passed on (the group is over),
                        // with the held transaction's start as where a resume must begin.
                        PreparedXa.Prepared(prepare.Xid, xaStart ?? new MySqlBinlogPosition(e.Coordinates.File, 4), xaRows ?? []);
                        xaRows = null;
                        await SendPositionAsync(writer, e, cancellationToken);
                        break;
                    case TransactionStep.Commit when e is QueryEvent { IsXaCompletion: true } query:
                        {
                            XaCompletion completion = query.XaCompletion ?? throw new OscException(
                                $"Cannot read the XID of '{query.Sql}' at {e.Coordinates}, so the prepared XA transaction it completes cannot be told apart.",
                                "Report this statement; meanwhile run the migration while no XA transaction writes the table.");
                            IReadOnlyList<CoreRowChange> held = PreparedXa.Complete(completion.Xid);
                            if (completion.Commit && held.Count > 0)
                            {
                                // Passed on once the commit is visible to new reads: a copy chunk that starts after
                                // the batch holding these rows closes must see them (the copy fence's argument).
                                await PreparedXa.WaitUntilCommittedAsync(completion.Xid, cancellationToken);
                                foreach (CoreRowChange change in held)
                                {
                                    await writer.WriteAsync(new RowChangeMessage(change), cancellationToken);
                                }
                            }

                            xaRows = null;
                            await SendPositionAsync(writer, e, cancellationToken);
                            break;
                        }

                    // A transaction's end, or a statement that is its own transaction (DDL): either way, everything up
                    // to here is complete. Without the DDL case a drain on a quiet server would wait for a commit that
                    // never comes. MySQL's XA COMMIT ... ONE PHASE ends its XA group with a one-phase XA_PREPARE_LOG:
                    // a commit, so the group's rows go on at once.
                    case TransactionStep.Commit or TransactionStep.Statement:
                        if (step == TransactionStep.Statement && e is QueryEvent statement && changeGuard is not null)
                        {
                            // Before the position moves past it: no drain can end before the statement is judged.
                            await changeGuard.CheckAsync(statement, cancellationToken);
                        }

                        if (xaRows is not null)
                        {
                            foreach (CoreRowChange change in xaRows)
                            {
                                await writer.WriteAsync(new RowChangeMessage(change), cancellationToken);
                            }

                            xaRows = null;
                        }

                        await SendPositionAsync(writer, e, cancellationToken);
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

    private ValueTask SendPositionAsync(ChannelWriter<ReplicationMessage> writer, BinlogEvent e, CancellationToken cancellationToken) =>
        writer.WriteAsync(new PositionMessage(new MySqlBinlogPosition(e.Coordinates.File, e.Coordinates.Position, PreparedXa.OldestHeldStart)), cancellationToken);

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
