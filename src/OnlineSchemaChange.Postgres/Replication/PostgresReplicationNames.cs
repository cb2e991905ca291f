using System.Security.Cryptography;
using System.Text;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Postgres.Replication;

/// <summary>
/// The names of the publication and the logical replication slot a migration of one table streams through:
/// <c>osc_&lt;table&gt;_&lt;hash&gt;</c>, the table's name in lower case with anything but letters, digits and
/// underscores dropped and cut to 40 characters, then eight hex digits of a hash of database, schema and table. Slots
/// are cluster-wide and allow only [a-z0-9_] up to 63 characters: the hash keeps two databases' (or two long names')
/// migrations apart, the readable part lets an operator recognise them in pg_replication_slots, and `osc cleanup`
/// derives the same names from the same table.
/// </summary>
public sealed class PostgresReplicationNames
{
    /// <summary>PostgreSQL's identifier limit (NAMEDATALEN - 1).</summary>
    public const int MaxLength = 63;

    private const int ReadablePart = 40;

    public PostgresReplicationNames(string database, TableName table)
    {
        ArgumentException.ThrowIfNullOrEmpty(database);
        ArgumentNullException.ThrowIfNull(table);
        string schema = table.Schema ?? "public";
        var readable = new StringBuilder();
        foreach (char c in table.Name.ToLowerInvariant())
        {
            if (readable.Length < ReadablePart && (char.IsAsciiLetterOrDigit(c) || c == '_'))
            {
                readable.Append(c);
            }
        }

        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{database}\0{schema}\0{table.Name}"));
        Slot = $"osc_{readable}_{Convert.ToHexStringLower(hash, 0, 4)}";
        Publication = Slot;
        Database = database;
        Table = new TableName(schema, table.Name);
    }

    public string Database { get; }

    public TableName Table { get; }

    public string Slot { get; }

    public string Publication { get; }
}
