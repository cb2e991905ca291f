using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;
using OnlineSchemaChange.Core.Verify;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using OnlineSchemaChange.Postgres.Copy;
using OnlineSchemaChange.Postgres.Migration;
using OnlineSchemaChange.Postgres.Replication;
using OnlineSchemaChange.Postgres.Verify;
using static OnlineSchemaChange.IntegrationTests.Postgres.PgEngineSql;

namespace OnlineSchemaChange.IntegrationTests.Postgres;

/// <summary>Verification before the cut-over on a real PostgreSQL 15: equal in the new types, repairs, and refusal.</summary>
[Collection("servers")]
public sealed class PostgresVerifierTests(ServersFixture servers) : IAsyncLifetime
{
    private string _connectionString = "";

    public async Task InitializeAsync()
    {
        _connectionString = await servers.NewPostgresDatabaseAsync("verify");
        await ExecuteAsync(_connectionString, """
            CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL, c text, ts timestamp, d numeric(10,2), b bytea, u int, j jsonb);
            INSERT INTO t SELECT g, g % 97, CASE WHEN g % 10 = 0 THEN NULL WHEN g % 10 = 1 THEN '' ELSE 'row-' || g END,
                                 timestamp '2024-01-01' + g * interval '1 minute', g / 8.0, decode(lpad(to_hex(g), 8, '0'), 'hex'), g,
                                 jsonb_build_object('g', g)
            FROM generate_series(1, 5000) g;
            """);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_faithful_shadow_in_new_types_verifies_and_drains_before_and_under_the_lock_of_its_one_snapshot()
    {
        var (facts, shadow) = await ShadowAndCopyAsync("ALTER COLUMN k TYPE bigint, ALTER COLUMN c TYPE varchar(40), ALTER COLUMN ts TYPE timestamptz, ALTER COLUMN d TYPE numeric(14,4)");
        var drained = new List<ReplicationPosition>();

        VerificationResult result = await new PostgresVerifier(_connectionString, facts, shadow, (p, _) => { drained.Add(p); return Task.CompletedTask; }, chunkRows: 1000)
            .RunAsync(CancellationToken.None);

        Assert.Equal(5000, result.Rows);
        Assert.Equal(6, result.Chunks); // five bounded ranges and the open-ended last one
        Assert.Equal(0, result.RepairedChunks);
        // Once unlocked to catch up, once under the lock for the rest.
        Assert.Equal(2, drained.Count);
        Assert.All(drained, p => Assert.IsType<PostgresLsnPosition>(p));
    }

    [Fact]
    public async Task A_corrupted_shadow_is_repaired_chunk_by_chunk_then_verifies()
    {
        var (facts, shadow) = await ShadowAndCopyAsync("ALTER COLUMN k TYPE bigint");
        // NULL where the original has '' (id 11) must count as a difference too.
        await ExecuteAsync(_connectionString, "UPDATE t_osc_new SET c = 'drift' WHERE id = 5; UPDATE t_osc_new SET c = NULL WHERE id = 11; DELETE FROM t_osc_new WHERE id = 2500; INSERT INTO t_osc_new (id, k) VALUES (9999, 1)");

        VerificationResult result = await new PostgresVerifier(_connectionString, facts, shadow, NoDrain, chunkRows: 1000).RunAsync(CancellationToken.None);

        Assert.Equal(3, result.RepairedChunks); // ids 5 and 11 share the first chunk
        Assert.Equal("0", await DifferencesAsync(_connectionString, facts, shadow));
    }

    [Fact]
    public async Task Drift_that_a_type_hash_would_miss_is_caught_case_under_a_nondeterministic_collation_and_numeric_scale()
    {
        // Under a case-insensitive collation 'row-5' and 'ROW-5' are equal and hash alike, and numeric's hash ignores
        // the display scale: verification hashes strings under "C" and numerics as their text, so both still differ.
        await ExecuteAsync(_connectionString, """
            CREATE COLLATION IF NOT EXISTS ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
            ALTER TABLE t ADD COLUMN s text COLLATE ci, ADD COLUMN n numeric;
            UPDATE t SET s = 'row-' || id, n = id / 4.0;
            """);
        var (facts, shadow) = await ShadowAndCopyAsync("ALTER COLUMN k TYPE bigint");
        await ExecuteAsync(_connectionString, """
            UPDATE t_osc_new SET s = upper(s) WHERE id = 5;
            UPDATE t_osc_new SET n = 1.00 WHERE id = 4;
            UPDATE t_osc_new SET b = '\x00' WHERE id = 2222;
            UPDATE t_osc_new SET ts = ts + interval '1 microsecond' WHERE id = 3333;
            UPDATE t_osc_new SET j = '{"g": 0}' WHERE id = 4444;
            """);
        Assert.Equal("1", await ScalarAsync(_connectionString, "SELECT count(*) FROM t JOIN t_osc_new n USING (id) WHERE t.s = n.s AND t.s COLLATE \"C\" <> n.s COLLATE \"C\""));
        Assert.Equal("1", await ScalarAsync(_connectionString, "SELECT count(*) FROM t JOIN t_osc_new n USING (id) WHERE t.n = n.n AND t.n::text <> n.n::text"));

        VerificationResult result = await new PostgresVerifier(_connectionString, facts, shadow, NoDrain, chunkRows: 1000).RunAsync(CancellationToken.None);

        Assert.Equal(4, result.RepairedChunks); // ids 4 and 5 share the first chunk
        Assert.Equal("0", await DifferencesAsync(_connectionString, facts, shadow));
        Assert.Equal("0", await ScalarAsync(_connectionString, "SELECT count(*) FROM t JOIN t_osc_new n USING (id) WHERE t.s COLLATE \"C\" <> n.s COLLATE \"C\" OR t.n::text <> n.n::text"));
    }

    [Fact]
    public async Task A_unique_constraint_over_duplicate_values_is_caught_and_refused_after_three_repairs()
    {
        await ExecuteAsync(_connectionString, "UPDATE t SET u = 1 WHERE id IN (1, 2, 3)");
        var (facts, shadow) = await ShadowAndCopyAsync("ADD CONSTRAINT t_u_unique UNIQUE (u)");

        // Its own type: a mismatch ends the migration, keeping nothing for a resume that would meet it again.
        var error = await Assert.ThrowsAsync<Core.Verify.VerificationFailedException>(() => new PostgresVerifier(_connectionString, facts, shadow, NoDrain, chunkRows: 1000).RunAsync(CancellationToken.None));

        Assert.Contains("Verification failed: 1 chunk(s) of public.t still differ from the shadow after 3 repairs", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was swapped", error.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Holds_only_a_share_lock_while_it_drains_so_reads_go_on()
    {
        var (facts, shadow) = await ShadowAndCopyAsync("ALTER COLUMN k TYPE bigint");
        string? readDuringDrain = null;

        await new PostgresVerifier(_connectionString, facts, shadow, async (_, _) =>
        {
            readDuringDrain = await ScalarAsync(_connectionString, "SELECT count(*) FROM t");
        }).RunAsync(CancellationToken.None);

        Assert.Equal("5000", readDuringDrain);
    }

    [Fact]
    public async Task A_replay_that_does_not_catch_up_fails_verification_without_ever_taking_the_lock()
    {
        var (facts, shadow) = await ShadowAndCopyAsync("ALTER COLUMN k TYPE bigint");
        int drains = 0;
        var verifier = new PostgresVerifier(_connectionString, facts, shadow, async (_, ct) => { drains++; await Task.Delay(Timeout.Infinite, ct); })
        {
            DrainTimeout = TimeSpan.FromMilliseconds(200),
            LockAttempts = 2,
        };

        var error = await Assert.ThrowsAsync<OscException>(() => verifier.RunAsync(CancellationToken.None));

        Assert.Equal(2, drains); // per attempt, only the catch-up: it gives up before the lock is taken
        Assert.Contains("did not catch up within 0.2 s", error.Message, StringComparison.Ordinal);
        await ExecuteAsync(_connectionString, "UPDATE t SET k = k WHERE id = 1"); // the SHARE lock is gone
    }

    private static Task NoDrain(ReplicationPosition position, CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task<(PostgresTableFacts, PostgresShadowTable)> ShadowAndCopyAsync(string alter)
    {
        var (facts, shadow, _) = await ShadowAsync(_connectionString, "t", alter);
        await new PostgresCopySource(_connectionString, facts, shadow).CopyRangeAsync(new KeyRange(0, null, null), CancellationToken.None);
        return (facts, shadow);
    }
}
