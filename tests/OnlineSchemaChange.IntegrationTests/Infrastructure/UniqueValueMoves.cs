using System.Data.Common;

namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>
/// An application that moves values of a unique column between rows, on either engine: table t has rows with the even
/// ids 2..2·rows and a unique v; each transaction frees a random row's value (adds 100,000,000 to it) and gives the
/// old value to a new row with an odd id, anywhere in the key space.
/// </summary>
public static class UniqueValueMoves
{
    /// <summary>Moves values until <paramref name="stop"/>; returns how many moved.</summary>
    public static async Task<int> RunAsync(DbConnection connection, int rows, CancellationToken stop)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var random = new Random(7);
        int moved = 0;
        while (!stop.IsCancellationRequested)
        {
            int from = 2 * random.Next(1, rows + 1), to = 2 * random.Next(0, rows) + 1;
            await using DbTransaction transaction = await connection.BeginTransactionAsync(CancellationToken.None);
            object? old = await ScalarAsync(connection, transaction, $"SELECT v FROM t WHERE id = {from} FOR UPDATE");
            if (old is null || await ScalarAsync(connection, transaction, $"SELECT id FROM t WHERE id = {to}") is not null)
            {
                await transaction.RollbackAsync(CancellationToken.None);
                continue;
            }

            await ScalarAsync(connection, transaction, $"UPDATE t SET v = v + 100000000 WHERE id = {from}; INSERT INTO t (id, v) VALUES ({to}, {old})");
            await transaction.CommitAsync(CancellationToken.None);
            moved++;
        }

        return moved;
    }

    private static async Task<object?> ScalarAsync(DbConnection connection, DbTransaction transaction, string sql)
    {
        await using DbCommand command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return await command.ExecuteScalarAsync(CancellationToken.None);
    }
}
