using MySqlConnector;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Migration;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.MySql.Schema;

namespace OnlineSchemaChange.MySql.Migration;

/// <summary>What the inspector found about the table and the server, all of it checked before anything is created.</summary>
public sealed record MySqlTableFacts(
    TableName Table,
    string ServerVersion,
    IReadOnlyList<MySqlColumn> Columns,
    IReadOnlyList<string> Key,
    string KeyName,
    long EstimatedRows,
    long TotalBytes,
    ShadowNames Names)
{
    /// <summary>The foreign keys to and from the table, already checked against the method chosen.</summary>
    public MySqlForeignKeys ForeignKeys { get; init; } = MySqlForeignKeys.None(Table);
}

/// <summary>
/// Checks everything that would make an online ALTER unsafe or impossible, before anything is created, and refuses
/// with the problem and its fix: binary logging off or not ROW/FULL, no usable key, triggers, foreign keys (unless
/// carried over with --foreign-keys rebuild, and even then a child with cascading rules), an ALTER that renames the
/// table, leftovers of an earlier run.
/// </summary>
public sealed class MySqlInspector(MySqlConnection connection)
{
    public const int MaxIdentifierLength = 64;

    /// <param name="table">The table to alter.</param>
    /// <param name="statement">The ALTER.</param>
    /// <param name="resuming">
    /// Continuing an interrupted run: its shadow and bookkeeping table, and a killed cut-over's sentry, are expected
    /// (the resume checks them against the checkpoint) rather than refused.
    /// </param>
    /// <param name="cancellationToken">Cancels the checks.</param>
    /// <param name="foreignKeys">What to do about foreign keys to or from the table: refuse them, or carry them over.</param>
    public async Task<MySqlTableFacts> InspectAsync(TableName table, AlterStatement statement, CancellationToken cancellationToken, bool resuming = false,
        ForeignKeyMethod foreignKeys = ForeignKeyMethod.Refuse)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(statement);
        if (statement.RenamesTable)
        {
            throw new OscException("The ALTER renames the table; an online rebuild keeps the table's name.",
                "Rename it separately (RENAME TABLE is instant), or see `osc plan` for the expand-contract steps.");
        }

        if (statement.Kind == AlterStatementKind.CreateIndex)
        {
            throw new OscException("CREATE INDEX runs online natively on InnoDB (ALGORITHM=INPLACE, LOCK=NONE).",
                "Run `osc plan` for the exact statement, or pass it as --alter \"ADD INDEX ...\" to rebuild the table anyway.");
        }

        var catalog = new MySqlCatalog(connection);
        string version = await catalog.ServerVersionAsync(cancellationToken);
        await CheckBinlogAsync(cancellationToken);

        var size = await catalog.TableSizeAsync(table, cancellationToken) ?? throw new OscException(
            $"Table {table} does not exist.", "Check the database and table names (they are case-sensitive on Linux).");
        string engine = await catalog.EngineAsync(table, cancellationToken) ?? "";
        if (!engine.Equals("InnoDB", StringComparison.OrdinalIgnoreCase))
        {
            throw new OscException($"{table} uses the {engine} engine; online changes need InnoDB's row locks and transactions.",
                $"Convert it first (ALTER TABLE {table} ENGINE=InnoDB), which `osc plan` can assess.");
        }

        IReadOnlyList<MySqlColumn> columns = await catalog.ColumnsAsync(table, cancellationToken);
        (string keyName, IReadOnlyList<string> key) = await ChooseKeyAsync(table, columns, cancellationToken);

        string? trigger = await ScalarAsync("SELECT GROUP_CONCAT(TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = @s AND EVENT_OBJECT_TABLE = @t", table, cancellationToken);
        if (trigger is not null)
        {
            throw new OscException($"{table} has triggers ({trigger}); the shadow table would not fire them during the copy, and the swap would drop them.",
                "Drop the triggers for the migration and recreate them afterwards, or change the table natively.");
        }

        MySqlForeignKeys keys = await MySqlForeignKeys.ReadAsync(connection, table, cancellationToken);
        keys.Check(foreignKeys, statement);

        var names = new ShadowNames(table.Name, MaxIdentifierLength);
        if (!resuming && await LeftoverTableAsync(connection, table, names, cancellationToken) is { } leftover)
        {
            throw new OscException($"{table.Schema}.{leftover} exists: an earlier migration of {table.Name} did not finish.",
                $"Resume it with --resume, or remove it with `osc cleanup <connection> --table {table}`.");
        }

        // A finished migration's original is still there under the name the swap needs: refuse now, not after the copy.
        var old = table with { Name = names.Old };
        string? oldColumns = await ScalarAsync("SELECT GROUP_CONCAT(COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t", old, cancellationToken);
        if (oldColumns is not null && !(resuming && oldColumns == Cutover.MySqlCutover.SentryColumn))
        {
            throw new OscException($"{old} exists: the original kept by an earlier migration of {table.Name}, or a cut-over's sentry.",
                $"Drop it once you no longer need it: `osc cleanup <connection> --table {table} --drop-old-table`.");
        }

        return new MySqlTableFacts(table, version, columns, key, keyName, size.EstimatedRows, size.TotalBytes, names) { ForeignKeys = keys };
    }

    private async Task CheckBinlogAsync(CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand("SELECT @@global.log_bin, @@global.binlog_format, @@global.binlog_row_image", connection);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        if (Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            throw new OscException("Binary logging is off on this server; osc replays concurrent changes from the binlog.",
                "Start the server with log_bin (and binlog_format=ROW, binlog_row_image=FULL).");
        }

        if (!reader.GetString(1).Equals("ROW", StringComparison.OrdinalIgnoreCase))
        {
            throw new OscException($"binlog_format is {reader.GetString(1)}; osc needs ROW to see each changed row.",
                "SET GLOBAL binlog_format = 'ROW' (new sessions pick it up) and set it in the server's configuration.");
        }

        if (!reader.GetString(2).Equals("FULL", StringComparison.OrdinalIgnoreCase))
        {
            throw new OscException($"binlog_row_image is {reader.GetString(2)}; osc needs FULL to replay whole rows.",
                "SET GLOBAL binlog_row_image = 'FULL' and set it in the server's configuration.");
        }

        await reader.CloseAsync();

        // The lock-free copy relies on engine commits following binlog order (docs/correctness.md). MariaDB always
        // does; MySQL does unless binlog_order_commits is off.
        await using var order = new MySqlCommand(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = 'BINLOG_ORDER_COMMITS'", connection);
        if (await order.ExecuteScalarAsync(cancellationToken) is string value && value.Equals("OFF", StringComparison.OrdinalIgnoreCase))
        {
            throw new OscException("binlog_order_commits is OFF; osc's lock-free copy needs commits to become visible in binlog order.",
                "SET GLOBAL binlog_order_commits = ON (the default).");
        }
    }

    /// <summary>The first table a run creates next to <paramref name="table"/> (schema-qualified) that is there now: an unfinished run's.</summary>
    internal static async Task<string?> LeftoverTableAsync(MySqlConnection connection, TableName table, ShadowNames names, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(names);
        foreach (string leftover in names.Created)
        {
            await using var command = new MySqlCommand("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t", connection);
            command.Parameters.AddWithValue("@s", table.Schema);
            command.Parameters.AddWithValue("@t", leftover);
            if (await command.ExecuteScalarAsync(cancellationToken) is not null)
            {
                return leftover;
            }
        }

        return null;
    }

    /// <summary>The primary key, else the first unique key whose columns are all NOT NULL (what InnoDB itself would cluster on).</summary>
    private async Task<(string Name, IReadOnlyList<string> Columns)> ChooseKeyAsync(TableName table, IReadOnlyList<MySqlColumn> columns, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(
            "SELECT INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR '\\n') FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t AND NON_UNIQUE = 0 AND SUB_PART IS NULL GROUP BY INDEX_NAME ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME",
            connection);
        command.Parameters.AddWithValue("@s", table.Schema);
        command.Parameters.AddWithValue("@t", table.Name);
        var nullable = columns.Where(c => c.Nullable).Select(c => c.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            string[] keyColumns = reader.GetString(1).Split('\n');
            if (!keyColumns.Any(nullable.Contains))
            {
                return (reader.GetString(0), keyColumns);
            }
        }

        throw new OscException($"{table} has no primary key and no unique key over NOT NULL columns: changes cannot be matched to rows.",
            "Add a primary key first (`osc plan` tells how that change runs).");
    }

    private async Task<string?> ScalarAsync(string sql, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(sql, connection);
        command.Parameters.AddWithValue("@s", table.Schema);
        command.Parameters.AddWithValue("@t", table.Name);
        object? value = await command.ExecuteScalarAsync(cancellationToken);
        return value is null or DBNull ? null : Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture);
    }
}
