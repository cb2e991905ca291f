using MySqlConnector;
using OnlineSchemaChange.Core.Plan;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.MySql.Schema;

/// <summary>The catalog questions the planner asks, over one open connection.</summary>
internal sealed class MySqlCatalog(MySqlConnection connection)
{
    /// <summary>A command with @s and @t bound to the table's schema and name, the shape of every catalog query here.</summary>
    private MySqlCommand TableCommand(string sql, TableName table)
    {
        var command = new MySqlCommand(sql, connection);
        command.Parameters.AddWithValue("@s", table.Schema);
        command.Parameters.AddWithValue("@t", table.Name);
        return command;
    }

    public async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<string> ServerVersionAsync(CancellationToken cancellationToken)
    {
        await using var command = new MySqlCommand("SELECT VERSION()", connection);
        return (string)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The table's storage engine, or null when there is no such table.</summary>
    public async Task<string?> EngineAsync(TableName table, CancellationToken cancellationToken)
    {
        await using MySqlCommand command = TableCommand("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t", table);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>The table's size, or null when there is no such table; refuses anything osc cannot rebuild online.</summary>
    public async Task<TableSize?> TableSizeAsync(TableName table, CancellationToken cancellationToken)
    {
        if (await DescribeAsync(table, cancellationToken) is not { } description)
        {
            return null;
        }

        if (description.SystemVersioned)
        {
            throw new Core.OscException(
                $"{table} is a system-versioned table: an online rebuild copies its current rows only, and the new table would have lost the history.",
                "Alter it natively (the server rebuilds current and history rows alike), or remove system versioning first if the history may go.");
        }

        return description.Size;
    }

    /// <summary>The table's size and whether it is system-versioned, or null when there is no such table.</summary>
    public async Task<(TableSize Size, bool SystemVersioned)?> DescribeAsync(TableName table, CancellationToken cancellationToken)
    {
        await using MySqlCommand command = TableCommand(
            "SELECT TABLE_TYPE, COALESCE(TABLE_ROWS, 0), COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t", table);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        string type = reader.GetString(0);
        if (type is not ("BASE TABLE" or "SYSTEM VERSIONED"))
        {
            throw new Core.OscException($"{table} is a {type.ToLowerInvariant()}, not a table.",
                type == "VIEW" ? "Plan the ALTER of the table it reads from." : "osc changes tables.");
        }

        var size = new TableSize(Convert.ToInt64(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture),
            Convert.ToInt64(reader.GetValue(2), System.Globalization.CultureInfo.InvariantCulture));
        return (size, type == "SYSTEM VERSIONED");
    }

    public async Task<IReadOnlyList<MySqlColumn>> ColumnsAsync(TableName table, CancellationToken cancellationToken)
    {
        await using MySqlCommand command = TableCommand(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%', EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t ORDER BY ORDINAL_POSITION", table);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        var columns = new List<MySqlColumn>();
        while (await reader.ReadAsync(cancellationToken))
        {
            string extra = reader.GetString(4);
            columns.Add(new MySqlColumn(reader.GetString(0), reader.GetString(1), reader.GetString(2) == "YES",
                Convert.ToInt64(reader.GetValue(3), System.Globalization.CultureInfo.InvariantCulture) != 0,
                extra.Contains("GENERATED", StringComparison.OrdinalIgnoreCase) || extra.Contains("VIRTUAL", StringComparison.OrdinalIgnoreCase)
                || extra.Contains("STORED", StringComparison.OrdinalIgnoreCase)));
        }

        return columns;
    }

    public async Task<IReadOnlyList<string>> PrimaryKeyAsync(TableName table, CancellationToken cancellationToken)
    {
        await using MySqlCommand command = TableCommand(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX", table);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        var key = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            key.Add(reader.GetString(0));
        }

        return key;
    }

    /// <summary>Index definitions as comparable strings: a new or changed one means the ALTER built an index.</summary>
    public async Task<IReadOnlySet<string>> IndexSignaturesAsync(TableName table, CancellationToken cancellationToken)
    {
        await using MySqlCommand command = TableCommand(
            "SELECT CONCAT(INDEX_NAME, ':', NON_UNIQUE, ':', GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX)) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t GROUP BY INDEX_NAME, NON_UNIQUE", table);
        await using MySqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken);
        var set = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            set.Add(reader.GetString(0));
        }

        return set;
    }

    /// <summary>
    /// InnoDB's id for the table: a rebuild creates a new table and so a new id. Null when the table is not InnoDB
    /// or the server hides the dictionary (then the algorithm alone tells).
    /// </summary>
    public async Task<long?> InnoDbTableIdAsync(TableName table, CancellationToken cancellationToken)
    {
        foreach (string view in new[] { "INNODB_SYS_TABLES", "INNODB_TABLES" })
        {
            try
            {
                await using var command = new MySqlCommand($"SELECT TABLE_ID FROM information_schema.{view} WHERE NAME = @n", connection);
                command.Parameters.AddWithValue("@n", $"{table.Schema}/{table.Name}");
                object? id = await command.ExecuteScalarAsync(cancellationToken);
                if (id is not null && id is not DBNull)
                {
                    return Convert.ToInt64(id, System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            catch (MySqlException e) when (e.ErrorCode is MySqlErrorCode.UnknownTable or MySqlErrorCode.SpecifiedAccessDeniedError or MySqlErrorCode.TableAccessDenied)
            {
                // This server names the view differently, or the user may not read it: try the other.
            }
        }

        return null;
    }
}
