using Npgsql;
using Npgsql.Replication;
using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Sql;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.LocalServers;
using OnlineSchemaChange.Postgres.Migration;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgEngineSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>Every refusal of the PostgreSQL inspector, on real servers, each leaving nothing behind.</summary>
[Collection("servers")]
public sealed class PostgresInspectorTests(ServersFixture servers) : IAsyncLifetime
{
    private string _connectionString = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewPostgresDatabaseAsync("inspect");
        await ExecuteAsync(_connectionString, """
            CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b text);
            INSERT INTO t SELECT g, g % 10, 'row ' || g FROM generate_series(1, 100) g;
            """);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_plain_table_yields_its_columns_key_and_our_names()
    {
        await ExecuteAsync(_connectionString, "ALTER TABLE t DROP COLUMN b; ALTER TABLE t ADD COLUMN c text; ANALYZE t");

        PostgresTableFacts facts = await InspectAsync(_connectionString, "t", "ALTER COLUMN a TYPE bigint");

        Assert.Equal(new TableName("public", "t"), facts.Table);
        Assert.Equal(["id"], facts.Key);
        Assert.Equal("t_pkey", facts.KeyName);
        Assert.Equal(["id", "a", "c"], facts.Columns.Select(c => c.Name));
        Assert.Equal([1, 2, 4], facts.Columns.Select(c => c.Number)); // the dropped column's number stays a gap
        Assert.Equal(100, facts.EstimatedRows);
        Assert.Equal("t_osc_new", facts.Names.Shadow);
        Assert.Equal("", await OurRelationsAsync(_connectionString));
    }

    [Fact]
    public async Task The_replica_identity_index_is_the_key_when_there_is_no_primary_key()
    {
        await ExecuteAsync(_connectionString, """
            CREATE TABLE r (k1 int NOT NULL, k2 text NOT NULL, v int);
            CREATE UNIQUE INDEX r_k ON r (k2, k1);
            ALTER TABLE r REPLICA IDENTITY USING INDEX r_k;
            """);

        PostgresTableFacts facts = await InspectAsync(_connectionString, "r", "ADD COLUMN w int");

        Assert.Equal(["k2", "k1"], facts.Key);
        Assert.Equal("r_k", facts.KeyName);
    }

    [Theory]
    [InlineData("CREATE TABLE x (a int, b int)", "has no primary key")]
    [InlineData("CREATE TABLE x (a int PRIMARY KEY); ALTER TABLE x REPLICA IDENTITY NOTHING", "REPLICA IDENTITY NOTHING")]
    [InlineData("CREATE TABLE x (a int, b int) PARTITION BY RANGE (a)", "is a partitioned table")]
    [InlineData("CREATE TABLE p (a int, b int) PARTITION BY RANGE (a); CREATE TABLE x PARTITION OF p FOR VALUES FROM (0) TO (10); ALTER TABLE x ADD PRIMARY KEY (a)", "is a partition")]
    [InlineData("CREATE TABLE p (a int PRIMARY KEY); CREATE TABLE x (b int) INHERITS (p); ALTER TABLE x ADD PRIMARY KEY (a)", "inherits from another table")]
    [InlineData("CREATE TABLE x (a int PRIMARY KEY); CREATE TABLE c (b int) INHERITS (x)", "1 table(s) inherit from it")]
    [InlineData("CREATE VIEW x AS SELECT * FROM t", "is not a table")]
    [InlineData("CREATE TABLE x (a int PRIMARY KEY); CREATE TABLE x_osc_new (a int)", "an earlier migration of x did not finish")]
    [InlineData("CREATE TABLE x (a int PRIMARY KEY); CREATE TABLE x_osc_log (a int)", "an earlier migration of x did not finish")]
    [InlineData("CREATE TABLE x (a int PRIMARY KEY); CREATE TABLE x_osc_old (a int)", "the original kept by an earlier migration")]
    public async Task Refuses_a_table_it_cannot_rebuild_and_creates_nothing(string setup, string problem)
    {
        await ExecuteAsync(_connectionString, setup);
        string before = await OurRelationsAsync(_connectionString);

        var error = await Assert.ThrowsAsync<OscException>(() => InspectAsync(_connectionString, "x", "ADD COLUMN z int"));

        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(error.Hint));
        Assert.Equal(before, await OurRelationsAsync(_connectionString));
    }

    [Theory]
    [InlineData("RENAME TO t2", "renames the table")]
    [InlineData("CREATE INDEX t_b ON t (b)", "CONCURRENTLY")]
    public async Task Refuses_an_alter_it_should_not_run_as_a_rebuild(string alter, string problem)
    {
        var error = await Assert.ThrowsAsync<OscException>(() => InspectAsync(_connectionString, "t", alter));

        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
        Assert.Equal("", await OurRelationsAsync(_connectionString));
    }

    [Fact]
    public async Task Refuses_a_user_without_replication_and_one_that_does_not_own_the_table()
    {
        string role = "osc_norepl_" + Guid.NewGuid().ToString("N")[..8];
        string replicator = "osc_repl_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync(_connectionString, $"""
            CREATE ROLE {role} LOGIN PASSWORD 'pw'; CREATE ROLE {replicator} LOGIN REPLICATION PASSWORD 'pw';
            CREATE TABLE owned (id int PRIMARY KEY); ALTER TABLE owned OWNER TO {role};
            GRANT SELECT ON t TO {replicator};
            """);
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(_connectionString) { Username = role, Password = "pw", Pooling = false };
            var noReplication = await Assert.ThrowsAsync<OscException>(() => InspectAsync(builder.ConnectionString, "owned", "ADD COLUMN z int"));
            Assert.Contains("neither the REPLICATION attribute nor superuser", noReplication.Message, StringComparison.Ordinal);
            Assert.Contains($"ALTER ROLE \"{role}\" REPLICATION", noReplication.Hint, StringComparison.Ordinal);

            builder.Username = replicator;
            var notOwner = await Assert.ThrowsAsync<OscException>(() => InspectAsync(builder.ConnectionString, "t", "ADD COLUMN z int"));
            Assert.Contains("does not own", notOwner.Message, StringComparison.Ordinal);
            Assert.Equal("", await OurRelationsAsync(_connectionString));
        }
        finally
        {
            await ExecuteAsync(_connectionString, $"DROP TABLE owned; REVOKE ALL ON t FROM {replicator}; DROP ROLE {role}; DROP ROLE {replicator}");
        }
    }

    [Fact]
    public async Task Refuses_a_server_without_logical_decoding()
    {
        await using var server = await LocalPostgres.StartAsync(new PostgresOptions { Settings = new Dictionary<string, string> { ["wal_level"] = "replica" } });
        await ExecuteAsync(server.ConnectionString, "CREATE TABLE x (a int PRIMARY KEY)");

        var error = await Assert.ThrowsAsync<OscException>(() => InspectAsync(server.ConnectionString, "x", "ADD COLUMN z int"));

        Assert.Contains("wal_level is replica", error.Message, StringComparison.Ordinal);
        Assert.Contains("ALTER SYSTEM SET wal_level = logical", error.Hint, StringComparison.Ordinal);
        Assert.Equal("", await OurRelationsAsync(server.ConnectionString));
    }

    [Fact]
    public async Task Refuses_when_no_replication_slot_or_wal_sender_is_free()
    {
        await using var server = await LocalPostgres.StartAsync(new PostgresOptions
        {
            Settings = new Dictionary<string, string> { ["max_replication_slots"] = "1", ["max_wal_senders"] = "1" },
        });
        await ExecuteAsync(server.ConnectionString, "CREATE TABLE x (a int PRIMARY KEY)");
        await ExecuteAsync(server.ConnectionString, "SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')");

        var noSlot = await Assert.ThrowsAsync<OscException>(() => InspectAsync(server.ConnectionString, "x", "ADD COLUMN z int"));
        Assert.Contains("No replication slot is free: 1 of max_replication_slots = 1", noSlot.Message, StringComparison.Ordinal);

        await ExecuteAsync(server.ConnectionString, "SELECT pg_drop_replication_slot('someone_else')");
        await using (var walSender = new LogicalReplicationConnection(server.ConnectionString))
        {
            await walSender.Open();
            var noSender = await Assert.ThrowsAsync<OscException>(() => InspectAsync(server.ConnectionString, "x", "ADD COLUMN z int"));
            Assert.Contains("No WAL sender is free", noSender.Message, StringComparison.Ordinal);
        }

        Assert.Equal("", await OurRelationsAsync(server.ConnectionString));
    }

    private static async Task<PostgresTableFacts> InspectAsync(string connectionString, string table, string alter)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var name = new TableName(null, table);
        return await new PostgresInspector(connection).InspectAsync(name, AlterStatement.Parse(alter, name, SqlDialect.Postgres), CancellationToken.None);
    }
}
