namespace OnlineSchemaChange.Core.Sql;

/// <summary>A table, optionally qualified by its schema (MySQL: database).</summary>
public sealed record TableName(string? Schema, string Name)
{
    public override string ToString() => Schema is null ? Name : $"{Schema}.{Name}";

    /// <summary>Parses "t" or "schema.t"; quoting is not needed on the command line.</summary>
    public static TableName Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        int dot = text.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? new TableName(null, text.Trim()) : new TableName(text[..dot].Trim(), text[(dot + 1)..].Trim());
    }
}
