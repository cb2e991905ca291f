using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Core.Checkpoint;

/// <summary>The checks every engine makes before resuming from a stored checkpoint: there is one, it is this ALTER's on this table, and its position reads.</summary>
public static class ResumableCheckpoint
{
    /// <summary>The checkpoint, once it is known to belong to <paramref name="migration"/>; otherwise an error naming why and <paramref name="cleanup"/>.</summary>
    public static MigrationCheckpoint Require(MigrationCheckpoint? checkpoint, MigrationDigest migration, TableName original, string shadow, string cleanup)
    {
        ArgumentNullException.ThrowIfNull(migration);
        ArgumentNullException.ThrowIfNull(original);
        if (checkpoint is null)
        {
            throw new OscException($"{original.Schema}.{shadow} exists but no checkpoint was recorded: the earlier run stopped before its first checkpoint.",
                $"Remove its leftovers with {cleanup}, then run without --resume.");
        }

        if (checkpoint.Digest != migration.Digest)
        {
            if (checkpoint.Statement != migration.Statement)
            {
                throw new OscException(
                    $"The interrupted migration of {original} was for another ALTER: it ran \"{checkpoint.Statement}\", this run asks for \"{migration.Statement}\".",
                    $"Resume with the same --alter, or remove its leftovers with {cleanup} and start the new ALTER afresh.");
            }

            throw new OscException(
                $"{original}'s columns or key changed since the interrupted migration started: its shadow no longer matches the table.",
                $"Remove its leftovers with {cleanup} and start again.");
        }

        return checkpoint;
    }

    /// <summary>The checkpoint's replay position in the engine's form.</summary>
    public static T Position<T>(MigrationCheckpoint checkpoint, Func<string, T> parse, string cleanup)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(parse);
        try
        {
            return parse(checkpoint.Position);
        }
        catch (FormatException e)
        {
            throw new OscException($"The checkpoint's replay position cannot be read: {e.Message}", $"Remove the leftovers with {cleanup} and start again.", e);
        }
    }
}
