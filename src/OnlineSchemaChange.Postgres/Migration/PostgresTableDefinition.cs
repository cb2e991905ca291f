using Npgsql;
using NpgsqlTypes;

namespace OnlineSchemaChange.Postgres.Migration;

/// <summary>
/// What of the original's definition the shadow was built from (CREATE TABLE ... LIKE ... INCLUDING ALL): its columns
/// with their types, nullability, defaults, generation, identity and collation, its indexes and its constraints other
/// than foreign keys (which the swap carries over as they are then). The swap compares it under its lock with the one
/// read before the shadow was created: an index, constraint or column type someone changed meanwhile would otherwise
/// be missing from the new table without a word (pgoutput announces only a changed column list).
/// </summary>
public static class PostgresTableDefinition
{
    /// <summary>One row, one text column; $1 is the table's oid.</summary>
    public const string Sql = """
        SELECT concat_ws(E'\n',
            (SELECT string_agg(format('%I %s%s%s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                      CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                                      ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid),
                                      CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END,
                                      CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END,
                                      CASE WHEN a.attcollation <> 0 THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END), ', ' ORDER BY a.attnum)
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped),
            (SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ' ORDER BY pg_get_indexdef(i.indexrelid)) FROM pg_index i WHERE i.indrelid = $1),
            (SELECT string_agg(c.conname || ' ' || pg_get_constraintdef(c.oid), '; ' ORDER BY c.conname) FROM pg_constraint c WHERE c.conrelid = $1 AND c.contype <> 'f'))
        """;

    /// <summary>
    /// Reads the definition as the swap does, with search_path = pg_catalog: names in defaults and types come out
    /// schema-qualified (nextval('public.t_id_seq'::regclass), public.mood) whatever the session's search_path, so the
    /// two reads compare equal when nothing changed.
    /// </summary>
    public static async Task<string> ReadAsync(NpgsqlConnection connection, uint oid, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var path = new NpgsqlCommand("SET LOCAL search_path = pg_catalog", connection, transaction))
        {
            await path.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var command = new NpgsqlCommand(Sql, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlDbType.Oid });
        string definition = (string)(await command.ExecuteScalarAsync(cancellationToken))!;
        await transaction.CommitAsync(cancellationToken);
        return definition;
    }
}
