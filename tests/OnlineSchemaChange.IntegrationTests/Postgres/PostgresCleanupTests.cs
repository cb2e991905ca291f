using Npgsql;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.Postgres.Migration;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgEngineSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>`osc cleanup`'s table part on PostgreSQL: what an interrupted or finished run leaves, found and removed.</summary>
[Collection("servers")]
public sealed class PostgresCleanupTests(ServersFixture servers)
{
    [Fact]
    public async Task Drops_the_shadow_and_log_keeps_the_old_table_unless_asked_and_leaves_everything_else()
    {
        string connectionString = await servers.NewPostgresDatabaseAsync("cleanup");
        await ExecuteAsync(connectionString, """
            CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE t_osc_new (id int); CREATE TABLE t_osc_log (id int);
            CREATE TABLE t_osc_old (id int); CREATE TABLE t_other (id int);
            """);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var cleanup = new PostgresCleanup(connection);
        var table = new TableName(null, "t");

        Assert.Equal(["public.t_osc_new", "public.t_osc_log", "public.t_osc_old"], (await cleanup.ListAsync(table, CancellationToken.None)).Select(t => t.ToString()));

        PostgresCleanupReport first = await cleanup.RunAsync(table, dropOldTable: false, CancellationToken.None);
        Assert.Equal(["public.t_osc_new", "public.t_osc_log"], first.Dropped);
        Assert.Equal(["public.t_osc_old"], first.Kept);

        PostgresCleanupReport second = await cleanup.RunAsync(table, dropOldTable: true, CancellationToken.None);
        Assert.Equal(["public.t_osc_old"], second.Dropped);
        Assert.Equal("t,t_other", await ScalarAsync(connectionString, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 't%' AND relkind = 'r'"));
    }
}
