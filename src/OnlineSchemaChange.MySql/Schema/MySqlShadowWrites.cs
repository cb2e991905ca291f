using MySqlConnector;
using OnlineSchemaChange.Core.Migration;

namespace OnlineSchemaChange.MySql.Schema;

/// <summary>How the sessions that write the shadow (copy, replay, repair) are set up, and what their refusals mean.</summary>
public static class MySqlShadowWrites
{
    /// <summary>
    /// Run first on each session that writes the shadow. STRICT_ALL_TABLES: a value that does not fit its new type is an
    /// error, never truncated or zeroed with a warning under a lenient server sql_mode (the row would then differ from
    /// the original's in the new table, without a word). NO_AUTO_VALUE_ON_ZERO: a row whose AUTO_INCREMENT column holds
    /// 0 is copied as 0, not given the next value.
    /// </summary>
    public const string SessionSetup = "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@session.sql_mode, ''), 'STRICT_ALL_TABLES', 'NO_AUTO_VALUE_ON_ZERO')";

    /// <summary>Whether the server refused a row because it does not fit the shadow's definition.</summary>
    public static bool DoesNotFit(MySqlException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        // 1048 column cannot be null, 1264 out of range, 1265 data truncated, 1292 incorrect value, 1364 no default,
        // 1366 incorrect value for the column, 1406 data too long, 1452 foreign key, 1690 value out of range,
        // 3819 (MySQL) and 4025 (MariaDB) CHECK constraint.
        return (int)e.ErrorCode is 1048 or 1264 or 1265 or 1292 or 1364 or 1366 or 1406 or 1452 or 1690 or 3819 or 4025;
    }

    /// <summary>The refusal as the operator should read it; <paramref name="where"/> says which rows were being written.</summary>
    public static DataDoesNotFitException Explain(MySqlException e, string where)
    {
        ArgumentNullException.ThrowIfNull(e);
        return DataDoesNotFitException.Refused(where, e.Message, e);
    }
}
