using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Core.Checkpoint;

/// <summary>
/// Which migration a checkpoint belongs to: the table, its definition when the run started, and the ALTER, normalised
/// so that spelling does not matter (case of keywords, whitespace, comments, ALGORITHM=/LOCK=, a full "ALTER TABLE t"
/// versus its clauses) while anything that changes the shadow does. A resume is accepted only under the same digest.
/// </summary>
public sealed record MigrationDigest(string Table, string Statement, string Digest)
{
    /// <param name="table">The table, schema-qualified.</param>
    /// <param name="tableDefinition">The engine's description of the table's columns and key when the run started.</param>
    /// <param name="statement">The parsed ALTER.</param>
    /// <param name="dialect">How to read the ALTER's tokens.</param>
    public static MigrationDigest Compute(string table, string tableDefinition, AlterStatement statement, SqlDialect dialect)
    {
        ArgumentNullException.ThrowIfNull(statement);
        string normalised = Normalise(statement, dialect);
        string input = string.Join('\n', table, tableDefinition, normalised);
        string digest = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(input)));
        return new MigrationDigest(table, normalised, digest);
    }

    /// <summary>The change clauses, tokens separated by one space, bare words upper-cased; quoted text kept as written.</summary>
    public static string Normalise(AlterStatement statement, SqlDialect dialect)
    {
        ArgumentNullException.ThrowIfNull(statement);
        IEnumerable<string> clauses = statement.Kind == AlterStatementKind.CreateIndex
            ? [statement.RenderFor("?")]
            : statement.ChangeClauses.Select(c => c.Text);
        return string.Join(", ", clauses.Select(clause => string.Join(' ', SqlLexer.Tokenize(clause, dialect)
            .Select(t => t.Kind == SqlTokenKind.Word ? t.Text.ToUpper(CultureInfo.InvariantCulture) : t.Text))));
    }
}
