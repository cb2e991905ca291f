using OnlineSchemaChange.Core.Plan;

namespace OnlineSchemaChange.Tests.Core;

public sealed class StrategyAdvisorTests
{
    private static ServerFindings Findings(bool rewrites = false, bool scans = false, bool index = false, bool blocksWrites = false) => new()
    {
        Method = "m", Lock = "l", RewritesTable = rewrites, ScansTable = scans, BuildsIndex = index, BlocksWrites = blocksWrites, BlocksReads = false,
    };

    private static readonly ApplicationImpact Drop = new(ImpactKind.DropColumn, "c", "gone");

    [Fact]
    public void Application_visible_changes_need_expand_contract_even_when_instant()
    {
        Assert.Equal(PlanStrategy.ExpandContract, StrategyAdvisor.Decide(Findings(), [Drop], hasSafeVariant: false));
    }

    [Fact]
    public void Catalog_only_changes_run_natively() =>
        Assert.Equal(PlanStrategy.RunNatively, StrategyAdvisor.Decide(Findings(blocksWrites: true), [], false));

    [Fact]
    public void Online_index_builds_run_natively() =>
        Assert.Equal(PlanStrategy.RunNatively, StrategyAdvisor.Decide(Findings(index: true), [], false));

    [Fact]
    public void Online_rebuilds_go_through_osc_alter_so_replicas_are_not_stalled() =>
        Assert.Equal(PlanStrategy.OnlineRebuild, StrategyAdvisor.Decide(Findings(rewrites: true), [], false));

    [Fact]
    public void Blocking_work_with_a_safe_form_uses_it() =>
        Assert.Equal(PlanStrategy.RunSafeVariant, StrategyAdvisor.Decide(Findings(scans: true, blocksWrites: true), [], true));

    [Fact]
    public void Blocking_work_without_a_safe_form_needs_an_online_rebuild() =>
        Assert.Equal(PlanStrategy.OnlineRebuild, StrategyAdvisor.Decide(Findings(rewrites: true, blocksWrites: true), [], false));

    [Fact]
    public void A_table_osc_cannot_rebuild_has_no_online_way_for_blocking_work() =>
        Assert.Equal(PlanStrategy.MaintenanceWindow, StrategyAdvisor.Decide(Findings(rewrites: true, blocksWrites: true), [], false, canRebuildOnline: false));

    [Fact]
    public void A_table_osc_cannot_rebuild_takes_an_online_rewrite_natively() =>
        Assert.Equal(PlanStrategy.RunNatively, StrategyAdvisor.Decide(Findings(rewrites: true), [], false, canRebuildOnline: false));

    [Fact]
    public void A_table_osc_cannot_rebuild_still_uses_a_safe_form_or_expand_contract()
    {
        Assert.Equal(PlanStrategy.RunSafeVariant, StrategyAdvisor.Decide(Findings(scans: true, blocksWrites: true), [], true, canRebuildOnline: false));
        Assert.Equal(PlanStrategy.ExpandContract, StrategyAdvisor.Decide(Findings(rewrites: true, blocksWrites: true), [Drop], false, canRebuildOnline: false));
    }

    [Theory]
    [InlineData(PlanStrategy.RunNatively, 0)]
    [InlineData(PlanStrategy.RunSafeVariant, 0)]
    [InlineData(PlanStrategy.OnlineRebuild, 2)]
    [InlineData(PlanStrategy.ExpandContract, 3)]
    [InlineData(PlanStrategy.MaintenanceWindow, 4)]
    public void Exit_codes_are_the_documented_ones(PlanStrategy strategy, int code) => Assert.Equal(code, PlanExitCodes.For(strategy));

    [Fact]
    public void Blocking_time_grows_with_the_table_and_is_zero_when_not_blocking()
    {
        var small = new TableSize(1_000, 1 << 20);
        var large = new TableSize(100_000_000, 50L << 30);
        ServerFindings rewrite = Findings(rewrites: true, blocksWrites: true);

        Assert.True(large.EstimateBlockingTime(rewrite) > TimeSpan.FromMinutes(5));
        Assert.True(small.EstimateBlockingTime(rewrite) < TimeSpan.FromSeconds(1));
        Assert.Equal(TimeSpan.Zero, large.EstimateBlockingTime(Findings(rewrites: true)));
    }
}
