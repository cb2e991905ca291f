using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Core.Plan;

/// <summary>The SQL of each expand-contract step, in one engine's dialect.</summary>
public interface IExpandContractSql
{
    string QuoteIdentifier(string identifier);

    string AddColumn(TableName table, string column, string type);

    string MakeNullable(TableName table, string column, string type);

    /// <summary>One keyset batch of the backfill; parameters named :last_key (the batch start) and :batch_size.</summary>
    string BackfillBatch(TableName table, IReadOnlyList<string> keyColumns, string column, string expression);

    string CountMismatches(TableName table, string column, string expression);

    string Cast(string expression, string type);

    string DropColumn(TableName table, string column);

    string RenameTableBehindView(TableName table, string newName);

    string DropView(TableName table);
}
