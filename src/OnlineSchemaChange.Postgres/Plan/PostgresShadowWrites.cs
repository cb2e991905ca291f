using Npgsql;
using OnlineSchemaChange.Core.Migration;

namespace OnlineSchemaChange.Postgres.Plan;

/// <summary>What the server's refusal of a write to the shadow (copy, replay) means.</summary>
public static class PostgresShadowWrites
{
    /// <summary>
    /// Whether the server refused a row because it does not fit the shadow's definition: a data exception (class 22:
    /// too long, out of range, invalid text for the type, a failing USING expression), or a NOT NULL, foreign key or
    /// CHECK constraint the ALTER added.
    /// </summary>
    public static bool DoesNotFit(PostgresException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e.SqlState.StartsWith("22", StringComparison.Ordinal)
               || e.SqlState is PostgresErrorCodes.NotNullViolation or PostgresErrorCodes.ForeignKeyViolation or PostgresErrorCodes.CheckViolation;
    }

    /// <summary>The refusal as the operator should read it; <paramref name="where"/> says which rows were being written.</summary>
    public static DataDoesNotFitException Explain(PostgresException e, string where)
    {
        ArgumentNullException.ThrowIfNull(e);
        // Not the detail: it holds the row's values (Npgsql redacts it by default), which have no place in osc's output.
        return DataDoesNotFitException.Refused(where, e.MessageText, e);
    }
}
