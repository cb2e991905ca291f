using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Npgsql;
using Npgsql.Replication;
using Npgsql.Replication.PgOutput;
using Npgsql.Replication.PgOutput.Messages;
using NpgsqlTypes;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Migration;
using ReplicationMessage = OnlineSchemaChange.Core.Changes.ReplicationMessage;

using OnlineSchemaChange.Postgres.Connection;

namespace OnlineSchemaChange.Postgres.Replication;

public sealed record PostgresChangeFeedOptions
{
    /// <summary>How often the slot is told how far the shadow table is written (its confirmed flush position).</summary>
    public TimeSpan StatusInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Reconnections in a row without a message in between before the feed gives up.</summary>
    public int MaxReconnects { get; init; } = 10;

    public TimeSpan ReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// For a resumed run: the checkpoint's position, up to which every change is in the shadow already. The stream asks
    /// for what follows it (the server sends from its confirmed position when that is later).
    /// </summary>
    public PostgresLsnPosition? StartAfter { get; init; }
}

/// <summary>
/// Feeds the applier from the slot: each changed row of the migrated table becomes a <see cref="RowChange"/> keyed by
/// the table's key columns, each commit the position of its end, and each logical message we emit (the drain marker)
/// its own position, since PostgreSQL skips transactions that touch no published table and a drain on a quiet table
/// would otherwise wait for ever. Values stay in PostgreSQL's text form, which every type parses back exactly; integer
/// keys become numbers so batches are written in the index's order. Unchanged TOASTed values become
/// <see cref="UnchangedValue"/>, never NULL. The slot's confirmed position follows <paramref name="applied"/> only, the
/// position the applier has committed in the shadow table; after a lost connection the feed starts again from the
/// slot and skips the transactions it already passed on, so nothing is lost or passed on twice.
/// </summary>
public sealed class PostgresChangeFeed(
    string connectionString, PostgresReplicationNames names, IReadOnlyList<string> columns, IReadOnlyList<string> keyColumns,
    Func<ReplicationPosition?> applied, PostgresChangeFeedOptions? options = null)
{
    /// <summary>The prefix of the logical messages that mark drain positions.</summary>
    public const string MarkerPrefix = "osc";

    private readonly PostgresChangeFeedOptions _options = options ?? new PostgresChangeFeedOptions();
    private readonly Dictionary<uint, RelationLayout> _layouts = [];
    private NpgsqlLogSequenceNumber _lastCommit = NpgsqlLogSequenceNumber.Invalid;
    private NpgsqlLogSequenceNumber _lastPosition = options?.StartAfter?.Lsn ?? NpgsqlLogSequenceNumber.Invalid;

    // The transaction being passed on, and how many of its rows are: when the connection drops inside it, the server
    // sends it again whole, and the rows already passed on are skipped.
    private NpgsqlLogSequenceNumber _transaction = NpgsqlLogSequenceNumber.Invalid;
    private uint? _xid;
    private long _transactionRows;
    private long _rowsToSkip;
    private StrongBox<(NpgsqlLogSequenceNumber, long)>? _lastMarker;

    public long RowsSeen { get; private set; }

    /// <summary>The last drain marker passed on, and when (a <see cref="System.Diagnostics.Stopwatch"/> timestamp): when a drain's wait ended in the stream.</summary>
    public (NpgsqlLogSequenceNumber Lsn, long Timestamp)? LastMarker => Volatile.Read(ref _lastMarker)?.Value;

    /// <summary>The transactions this feed has begun to pass on (recent ones; each has committed, as pgoutput sends a transaction at its commit), for the copy's visibility check.</summary>
    public ReceivedTransactions Received { get; } = new();

    /// <summary>How often the replication connection was lost and opened again.</summary>
    public int Reconnects { get; private set; }

    public async Task RunAsync(ChannelWriter<ReplicationMessage> writer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(writer);
        try
        {
            int failuresInARow = 0;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                bool progressed = false;
                try
                {
                    await StreamOnceAsync(writer, () => progressed = true, cancellationToken);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested && IsConnectionLoss(e))
                {
                    failuresInARow = progressed ? 1 : failuresInARow + 1;
                    if (failuresInARow > _options.MaxReconnects)
                    {
                        throw new OscException($"The replication connection for {names.Table} was lost {failuresInARow} times in a row: {e.Message}",
                            "Check the server's log and max_wal_senders; the slot keeps the changes, so run again after `osc cleanup`.", e);
                    }
                }

                Reconnects++;
                await Task.Delay(_options.ReconnectDelay * Math.Max(1, failuresInARow), cancellationToken);
            }
        }
        catch (Exception error)
        {
            writer.TryComplete(error);
            throw;
        }
    }

    private async Task StreamOnceAsync(ChannelWriter<ReplicationMessage> writer, Action progressed, CancellationToken cancellationToken)
    {
        await using var connection = new LogicalReplicationConnection(connectionString)
        {
            WalReceiverStatusInterval = _options.StatusInterval,
        };
        await connection.Open(cancellationToken);
        _layouts.Clear();
        using var stopStatus = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var slot = new PgOutputReplicationSlot(names.Slot);
        // Protocol 1 in text: the server skips what was committed before the position we ask for (the slot's
        // confirmed one when ours is older), and we skip by commit position as well.
        var replicationOptions = new PgOutputReplicationOptions(names.Publication, PgOutputProtocolVersion.V1, binary: false, messages: true);
        NpgsqlLogSequenceNumber? start = _lastPosition == NpgsqlLogSequenceNumber.Invalid ? null : _lastPosition;
        Task status = Task.CompletedTask;
        try
        {
            bool skipping = false;
            await foreach (PgOutputReplicationMessage message in connection.StartReplication(slot, replicationOptions, cancellationToken, start))
            {
                if (status.IsCompleted)
                {
                    status = ReportStatusAsync(connection, stopStatus.Token);
                }

                switch (message)
                {
                    case BeginMessage begin:
                        _xid = begin.TransactionXid;
                        // Before any of its rows is passed on: the applier may write them before this feed reads the
                        // COMMIT, and a copy chunk entering after that batch closed must see the transaction. pgoutput
                        // sends a transaction only once it has committed, so its id is final here.
                        RecordReceived();
                        skipping = begin.TransactionFinalLsn <= _lastCommit;
                        _rowsToSkip = begin.TransactionFinalLsn == _transaction ? _transactionRows : 0;
                        _transaction = begin.TransactionFinalLsn;
                        _transactionRows = 0;
                        break;
                    case RelationMessage relation:
                        _layouts[relation.RelationId] = Layout(relation);
                        break;
                    case InsertMessage insert when !skipping:
                        object?[] inserted = await ReadAsync(insert.Relation, insert.NewRow, cancellationToken);
                        await SendAsync(writer, RowChange.Insert(Key(insert.Relation, inserted), inserted), cancellationToken);
                        break;
                    case UpdateMessage update when !skipping:
                        object?[]? before = update switch
                        {
                            IndexUpdateMessage index => await ReadAsync(update.Relation, index.Key, cancellationToken),
                            FullUpdateMessage full => await ReadAsync(update.Relation, full.OldRow, cancellationToken),
                            _ => null,
                        };
                        object?[] after = await ReadAsync(update.Relation, update.NewRow, cancellationToken);
                        RowKey newKey = Key(update.Relation, after, before);
                        await SendAsync(writer, RowChange.Update(before is null ? newKey : Key(update.Relation, before), newKey, after), cancellationToken);
                        break;
                    case DeleteMessage delete when !skipping:
                        object?[] gone = delete switch
                        {
                            KeyDeleteMessage key => await ReadAsync(delete.Relation, key.Key, cancellationToken),
                            FullDeleteMessage full => await ReadAsync(delete.Relation, full.OldRow, cancellationToken),
                            _ => throw new InvalidOperationException("A delete without its key."),
                        };
                        await SendAsync(writer, RowChange.Delete(Key(delete.Relation, gone)), cancellationToken);
                        break;
                    case TruncateMessage when !skipping:
                        throw new TableChangedException($"{names.Table} was truncated during the migration: its rows cannot be replayed into the new table.",
                            "Nothing was changed on the original's side; run the migration again once nothing truncates the table.");
                    case CommitMessage commit when !skipping:
                        _lastCommit = commit.CommitLsn;
                        _transaction = NpgsqlLogSequenceNumber.Invalid;
                        await PositionAsync(writer, commit.TransactionEndLsn, cancellationToken);
                        break;
                    case CommitMessage:
                        skipping = false;
                        break;
                    case LogicalDecodingMessage marker when marker.Flags == 0 && marker.Prefix.StartsWith(MarkerPrefix, StringComparison.Ordinal)
                                                            && marker.MessageLsn > _lastPosition:
                        Volatile.Write(ref _lastMarker, new StrongBox<(NpgsqlLogSequenceNumber, long)>((marker.MessageLsn, Stopwatch.GetTimestamp())));
                        await PositionAsync(writer, marker.MessageLsn, cancellationToken);
                        break;
                }

                progressed();
            }
        }
        finally
        {
            await stopStatus.CancelAsync();
            await status.ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task SendAsync(ChannelWriter<ReplicationMessage> writer, RowChange change, CancellationToken cancellationToken)
    {
        _transactionRows++;
        if (_rowsToSkip > 0)
        {
            _rowsToSkip--;
            return;
        }

        RowsSeen++;
        await writer.WriteAsync(new RowChangeMessage(change), cancellationToken);
    }

    private async Task PositionAsync(ChannelWriter<ReplicationMessage> writer, NpgsqlLogSequenceNumber lsn, CancellationToken cancellationToken)
    {
        _lastPosition = lsn;
        await writer.WriteAsync(new PositionMessage(new PostgresLsnPosition(lsn)), cancellationToken);
    }

    /// <summary>Tells the slot how far the shadow table is written, so the server may recycle the WAL before it.</summary>
    private async Task ReportStatusAsync(LogicalReplicationConnection connection, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.StatusInterval);
        try
        {
            do
            {
                if (applied() is PostgresLsnPosition done)
                {
                    connection.SetReplicationStatus(done.Lsn);
                    await connection.SendStatusUpdate(cancellationToken);
                }
            }
            while (await timer.WaitForNextTickAsync(cancellationToken));
        }
        catch (Exception e) when (e is OperationCanceledException or NpgsqlException or InvalidOperationException or ObjectDisposedException)
        {
            // The stream ended or broke; the read loop reports why and a new connection reports status again.
        }
    }

    private RelationLayout Layout(RelationMessage relation)
    {
        var sourceIndex = new int[relation.Columns.Count];
        for (int i = 0; i < sourceIndex.Length; i++)
        {
            string name = relation.Columns[i].ColumnName;
            sourceIndex[i] = IndexOf(columns, name);
            if (sourceIndex[i] < 0)
            {
                throw new TableChangedException($"{names.Table} gained a column {name} during the migration.",
                    "Do not alter the table while it is migrated; run the migration again with the change included. osc removed its shadow, bookkeeping table, slot and publication.");
            }
        }

        var keyIndex = new int[keyColumns.Count];
        var integerKey = new bool[keyColumns.Count];
        for (int k = 0; k < keyIndex.Length; k++)
        {
            keyIndex[k] = IndexOf(columns, keyColumns[k]);
            int inRelation = Array.IndexOf(sourceIndex, keyIndex[k]);
            if (keyIndex[k] < 0 || inRelation < 0)
            {
                throw new OscException($"The key column {keyColumns[k]} of {names.Table} is not in its replication stream.",
                    "Do not alter the table while it is migrated; run the migration again.");
            }

            // int2, int4, int8: compared as numbers, the index's order.
            integerKey[k] = relation.Columns[inRelation].DataTypeId is 20 or 21 or 23;
        }

        return new RelationLayout(sourceIndex, keyIndex, integerKey);
    }

    private static int IndexOf(IReadOnlyList<string> list, string name)
    {
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] == name)
            {
                return i;
            }
        }

        return -1;
    }

    // Every value of the tuple is read, in order: the message's buffer is reused for the next one.
    private async Task<object?[]> ReadAsync(RelationMessage relation, ReplicationTuple tuple, CancellationToken cancellationToken)
    {
        RelationLayout layout = _layouts.TryGetValue(relation.RelationId, out RelationLayout? known) ? known : _layouts[relation.RelationId] = Layout(relation);
        var row = new object?[columns.Count];
        int i = 0;
        await foreach (ReplicationValue value in tuple.WithCancellation(cancellationToken))
        {
            row[layout.SourceIndex[i++]] = value.Kind switch
            {
                TupleDataKind.Null => null,
                TupleDataKind.UnchangedToastedValue => UnchangedValue.Instance,
                _ => await value.Get<string>(cancellationToken),
            };
        }

        return row;
    }

    /// <summary>The row's key; an update that sent no old key kept it, so a key value left unsent is the old one's.</summary>
    private RowKey Key(RelationMessage relation, object?[] row, object?[]? before = null)
    {
        RelationLayout layout = _layouts[relation.RelationId];
        var values = new object?[layout.KeyIndex.Length];
        for (int k = 0; k < values.Length; k++)
        {
            object? value = row[layout.KeyIndex[k]];
            if (value is UnchangedValue)
            {
                value = before?[layout.KeyIndex[k]] ?? throw new OscException(
                    $"An update of {names.Table} left its key column {keyColumns[k]} out of the stream (a TOASTed key value).",
                    $"Set REPLICA IDENTITY FULL on {names.Table} for the migration, or migrate it natively.");
                row[layout.KeyIndex[k]] = value;
            }

            values[k] = layout.IntegerKey[k] && value is string text ? long.Parse(text, CultureInfo.InvariantCulture) : value;
        }

        return new RowKey(values);
    }

    // The slot still held by the walsender that is going away counts too: it is free again a moment later.
    private static bool IsConnectionLoss(Exception e) =>
        e is TimeoutException || e is PostgresException { SqlState: PostgresErrorCodes.ObjectInUse } || PostgresConnectionLoss.Is(e) || IsBrokenMessage(e);

    // A walsender ended in the middle of a row: Npgsql's tuple reader, skipping the rest of the row as the loop over
    // it ends, fails on the truncated message with an argument or state error of its own instead of the connection's
    // (seen with pg_terminate_backend under writes). Reconnecting from the slot is safe whatever broke the stream,
    // and the count of failures in a row still bounds it.
    private static bool IsBrokenMessage(Exception e) =>
        e is ArgumentOutOfRangeException or InvalidOperationException or EndOfStreamException
        && e.StackTrace is { } trace && trace.TrimStart().StartsWith("at Npgsql.", StringComparison.Ordinal);

    private sealed record RelationLayout(int[] SourceIndex, int[] KeyIndex, bool[] IntegerKey);

    private void RecordReceived()
    {
        if (_xid is uint xid)
        {
            Received.Add(xid);
        }
    }
}
