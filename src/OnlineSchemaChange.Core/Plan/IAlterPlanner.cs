using OnlineSchemaChange.Core.Sql;

namespace OnlineSchemaChange.Core.Plan;

/// <summary>
/// Asks the actual server how it would run an ALTER, by running it on an empty copy of the table that is always
/// removed again. Implemented per engine.
/// </summary>
public interface IAlterPlanner
{
    Task<AlterPlan> PlanAsync(TableName table, string alter, CancellationToken cancellationToken);
}
