using System.Collections.Concurrent;
using System.Globalization;
using MySqlConnector;
using OnlineSchemaChange.IntegrationTests.Infrastructure;
using Xunit.Abstractions;
using static OnlineSchemaChange.IntegrationTests.Infrastructure.MySqlTestSql;

namespace OnlineSchemaChange.IntegrationTests.MySql;

/// <summary>`osc alter --foreign-keys`: tables with foreign keys to or from them, on a real MariaDB.</summary>
[Collection("servers")]
public sealed class MySqlForeignKeyTests(ServersFixture servers, ITestOutputHelper output)
{
    private const string Customers = """
        CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40));
        INSERT INTO customers SELECT seq, CONCAT('customer-', seq) FROM seq_1_to_3000;
        """;

    private const string ChildOfCustomers = Customers + """
        CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, k INT NOT NULL, KEY ix_customer (customer_id),
            CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id));
        INSERT INTO orders (id, customer_id, k) SELECT seq, 1 + seq % 2000, seq % 97 FROM seq_1_to_30000;
        """;

    private const string ParentOfItems = """
        CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL, note VARCHAR(40));
        INSERT INTO orders SELECT seq, seq % 97, CONCAT('order-', seq) FROM seq_1_to_20000;
        CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT NOT NULL, KEY ix_order (order_id),
            CONSTRAINT fk_item_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE);
        INSERT INTO items (order_id) SELECT 1 + seq % 20000 FROM seq_1_to_10000;
        CREATE TABLE notes (id INT PRIMARY KEY, order_id INT, KEY ix_order (order_id),
            CONSTRAINT fk_note_order FOREIGN KEY (order_id) REFERENCES orders (id));
        INSERT INTO notes VALUES (1, 7);
        """;

    [Fact]
    public async Task A_child_altered_under_writes_ends_with_its_foreign_key_enforced_and_parent_deletes_never_fail()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_child", ChildOfCustomers);
        using var stop = new CancellationTokenSource();
        Task<ChildLoad> load = ChildLoad.RunAsync(db.ConnectionString, stop.Token);

        var result = await OscRunner.RunAsync("alter", db.Uri, "--table", "orders", "--alter", "MODIFY k BIGINT NOT NULL DEFAULT 0",
            "--foreign-keys", "rebuild", "--execute", "--json", "--chunk-time-millis", "100");
        await Task.Delay(300);
        await stop.CancelAsync();
        ChildLoad writes = await load;

        output.WriteLine(result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]);
        output.WriteLine($"load: {writes.Inserted.Count} inserts, {writes.RetiredCustomers.Count} customers retired with their orders");
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Empty(writes.Failures);
        Assert.True(writes.RetiredCustomers.Count > 3, "customers must be retired (orders, then the customer) through the migration");

        // The new table has the constraint under its rebuilt name; the old one keeps no constraint that could refuse a parent's delete.
        Assert.Equal("_fk_customer>customers", await ScalarAsync(db.ConnectionString,
            "SELECT GROUP_CONCAT(CONCAT(CONSTRAINT_NAME, '>', REFERENCED_TABLE_NAME)) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'orders'"));
        Assert.Equal("0", await ScalarAsync(db.ConnectionString,
            "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'orders_osc_old'"));
        Assert.Equal("bigint(20)", await ScalarAsync(db.ConnectionString,
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders' AND COLUMN_NAME = 'k'"));

        // Enforced: an orphan is refused, and so is deleting a customer that still has orders.
        var orphan = await Assert.ThrowsAsync<MySqlException>(() => ExecuteAsync(db.ConnectionString, "INSERT INTO orders (customer_id, k) VALUES (999999, 0)"));
        Assert.Equal(MySqlErrorCode.NoReferencedRow2, orphan.ErrorCode);
        int live = Enumerable.Range(1, 2000).First(c => !writes.RetiredCustomers.Contains(c));
        var parent = await Assert.ThrowsAsync<MySqlException>(() => ExecuteAsync(db.ConnectionString, $"DELETE FROM customers WHERE id = {live}"));
        Assert.Equal(MySqlErrorCode.RowIsReferenced2, parent.ErrorCode);

        // Every acknowledged write is there: no order of a retired customer, every other order inserted, nothing else.
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL"));
        var retired = writes.RetiredCustomers.ToHashSet();
        int expected = Enumerable.Range(1, 30000).Count(id => !retired.Contains(1 + id % 2000))
                       + writes.Inserted.Count(i => !retired.Contains(i.Customer));
        Assert.Equal(expected.ToString(CultureInfo.InvariantCulture), await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM orders"));
        var kept = writes.Inserted.Where(i => !retired.Contains(i.Customer)).Select(i => i.Id).ToList();
        if (kept.Count > 0)
        {
            Assert.Equal(kept.Count.ToString(CultureInfo.InvariantCulture),
                await ScalarAsync(db.ConnectionString, $"SELECT COUNT(*) FROM orders WHERE id IN ({string.Join(",", kept)})"));
        }
    }

    [Fact]
    public async Task A_parent_altered_with_rebuild_leaves_its_children_referencing_the_new_table_and_drops_the_old_one()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_parent", ParentOfItems);
        using var stop = new CancellationTokenSource();
        var writes = new ParentLoad([], [], [], []);
        Task load = ParentLoad.RunAsync(db.ConnectionString, writes, stop.Token);

        // The swap waits until the load has written during the migration: a quiet machine finished the whole run in
        // 0.2 s, before the load had written enough to tell.
        using var postpone = new FlagFile("fk-postpone");
        int before = writes.InsertedOrders.Count + writes.InsertedItems.Count;
        Task<OscRunner.Result> alter = OscRunner.RunAsync("alter", db.Uri, "--table", "orders", "--alter", "MODIFY k BIGINT NOT NULL DEFAULT 0, ADD COLUMN extra INT",
            "--foreign-keys", "rebuild", "--drop-old-table", "--execute", "--json", "--chunk-time-millis", "100", "--postpone-cut-over-flag-file", postpone.Path);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (writes.InsertedOrders.Count + writes.InsertedItems.Count - before <= 60 && !alter.IsCompleted && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        postpone.Lift();
        var result = await alter;
        await Task.Delay(300);
        await stop.CancelAsync();
        await load;

        output.WriteLine(result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Empty(writes.Failures);
        Assert.True(writes.InsertedOrders.Count + writes.InsertedItems.Count > 50, "the load must write through the migration");
        Assert.Equal("", await db.OscTablesAsync("orders"));

        // Both children now reference the new table, under the rebuilt names, with their rules.
        Assert.Equal("items._fk_item_order>orders:CASCADE,notes._fk_note_order>orders:RESTRICT", await ScalarAsync(db.ConnectionString,
            """
            SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME, '>', REFERENCED_TABLE_NAME, ':', DELETE_RULE) ORDER BY TABLE_NAME)
            FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()
            """));
        Assert.Equal("1", await ScalarAsync(db.ConnectionString,
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders' AND COLUMN_NAME = 'extra'"));

        // Enforced against the new table: an orphan item is refused, a delete cascades, a RESTRICT child refuses the delete.
        var orphan = await Assert.ThrowsAsync<MySqlException>(() => ExecuteAsync(db.ConnectionString, "INSERT INTO items (order_id) VALUES (99999999)"));
        Assert.Equal(MySqlErrorCode.NoReferencedRow2, orphan.ErrorCode);
        // An order the load created during the migration if one outlived it (the load may delete all it made), else the newest.
        long newest = long.Parse(await ScalarAsync(db.ConnectionString, "SELECT MAX(id) FROM orders"), CultureInfo.InvariantCulture);
        long newOrder = writes.InsertedOrders.Except(writes.DeletedOrders).DefaultIfEmpty(newest).Max();
        await ExecuteAsync(db.ConnectionString, $"INSERT INTO items (order_id) VALUES ({newOrder})");
        Assert.NotEqual("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM items WHERE order_id = 2"));
        await ExecuteAsync(db.ConnectionString, "DELETE FROM orders WHERE id = 2");
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM items WHERE order_id = 2"));
        var restricted = await Assert.ThrowsAsync<MySqlException>(() => ExecuteAsync(db.ConnectionString, "DELETE FROM orders WHERE id = 7"));
        Assert.Equal(MySqlErrorCode.RowIsReferenced2, restricted.ErrorCode);

        // Every acknowledged write reached the new table.
        Assert.Equal((20000 - 1 + writes.InsertedOrders.Count - writes.DeletedOrders.Count).ToString(CultureInfo.InvariantCulture),
            await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM orders"));
        Assert.Equal("0", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL"));
    }

    [Fact]
    public async Task A_table_referencing_itself_keeps_the_reference_to_itself()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_self", """
            CREATE TABLE t (id INT PRIMARY KEY, parent_id INT, k INT NOT NULL, KEY ix_parent (parent_id),
                CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES t (id));
            INSERT INTO t SELECT seq, NULL, seq FROM seq_1_to_100;
            INSERT INTO t SELECT seq, seq - 100, seq FROM seq_101_to_2000;
            """);

        var result = await OscRunner.RunAsync("alter", db.Uri, "--table", "t", "--alter", "MODIFY k BIGINT NOT NULL", "--foreign-keys", "rebuild", "--execute");

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal("_fk_parent>t", await ScalarAsync(db.ConnectionString,
            "SELECT GROUP_CONCAT(CONCAT(CONSTRAINT_NAME, '>', REFERENCED_TABLE_NAME)) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"));
        var orphan = await Assert.ThrowsAsync<MySqlException>(() => ExecuteAsync(db.ConnectionString, "INSERT INTO t VALUES (5000, 4999, 0)"));
        Assert.Equal(MySqlErrorCode.NoReferencedRow2, orphan.ErrorCode);
        await ExecuteAsync(db.ConnectionString, "DROP TABLE t_osc_old");
    }

    [Theory]
    [InlineData(ChildOfCustomers, "orders")]
    [InlineData(ParentOfItems, "orders")]
    public async Task By_default_a_table_with_foreign_keys_is_refused_and_nothing_is_created(string setup, string table)
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_refused", setup);
        string before = await SchemaAsync(db);

        var result = await OscRunner.RunAsync("alter", db.Uri, "--table", table, "--alter", "MODIFY k BIGINT NOT NULL", "--execute");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("has foreign keys", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("--foreign-keys rebuild", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await SchemaAsync(db));
    }

    [Theory]
    [InlineData(ChildOfCustomers, "1 of its own, 0 from other tables")]
    [InlineData(ParentOfItems, "0 of its own, 2 from other tables")]
    public async Task The_plan_for_a_rebuild_names_the_foreign_key_option_and_what_it_does(string setup, string counts)
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_plan", setup);
        string before = await SchemaAsync(db);

        var result = await OscRunner.RunAsync("plan", db.Uri, "--table", "orders", "--alter", "MODIFY k BIGINT NOT NULL", "--json");

        output.WriteLine(result.Stdout + result.Stderr);
        Assert.NotEqual(1, result.ExitCode);
        Assert.Contains("--execute --foreign-keys rebuild", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"The table has foreign keys ({counts})", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(before, await SchemaAsync(db));
    }

    [Theory]
    [InlineData("ON DELETE CASCADE")]
    [InlineData("ON DELETE SET NULL")]
    [InlineData("ON UPDATE CASCADE")]
    public async Task A_child_whose_rows_its_parent_changes_is_refused_even_with_rebuild(string rule)
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_cascade", $"""
            CREATE TABLE customers (id INT PRIMARY KEY);
            INSERT INTO customers VALUES (1), (2);
            CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, k INT NOT NULL, CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id) {rule});
            INSERT INTO orders VALUES (1, 1, 1), (2, 2, 2);
            """);
        string before = await SchemaAsync(db);

        foreach (string[] mode in new[] { Array.Empty<string>(), ["--execute"] })
        {
            var result = await OscRunner.RunAsync(["alter", db.Uri, "--table", "orders", "--alter", "MODIFY k BIGINT NOT NULL", "--foreign-keys", "rebuild", .. mode]);

            Assert.Equal(1, result.ExitCode);
            Assert.Contains("not write those changes to the binlog", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("fix:", result.Stderr, StringComparison.Ordinal);
            Assert.Equal(before, await SchemaAsync(db));
        }
    }

    [Fact]
    public async Task The_dry_run_lists_each_constraint_and_its_statements_and_leaves_nothing()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_dry", ParentOfItems + """
            CREATE TABLE shops (id INT PRIMARY KEY);
            INSERT INTO shops VALUES (1);
            ALTER TABLE orders ADD COLUMN shop_id INT NOT NULL DEFAULT 1, ADD CONSTRAINT fk_shop FOREIGN KEY (shop_id) REFERENCES shops (id);
            """);
        string before = await SchemaAsync(db);

        var result = await OscRunner.RunAsync("alter", db.Uri, "--table", "orders", "--alter", "RENAME COLUMN shop_id TO store_id", "--foreign-keys", "rebuild", "--json", "--native", "off");

        Assert.True(result.ExitCode == 0, result.Stderr);
        var keys = result.Json.GetProperty("foreignKeys").EnumerateArray()
            .Select(k => $"{k.GetProperty("side").GetString()}:{k.GetProperty("table").GetString()}.{k.GetProperty("name").GetString()}>{k.GetProperty("newName").GetString()}")
            .ToList();
        string schema = db.Name;
        Assert.Equal([$"own:{schema}.orders.fk_shop>_fk_shop", $"referencing:{schema}.items.fk_item_order>_fk_item_order", $"referencing:{schema}.notes.fk_note_order>_fk_note_order"], keys);
        string statements = string.Join("\n", result.Json.GetProperty("foreignKeys").EnumerateArray().SelectMany(k => k.GetProperty("statements").EnumerateArray()).Select(s => s.GetString()));
        Assert.Contains("ADD CONSTRAINT `_fk_shop` FOREIGN KEY (`store_id`) REFERENCES", statements, StringComparison.Ordinal);
        Assert.Contains("DROP FOREIGN KEY `fk_item_order`, ADD CONSTRAINT `_fk_item_order` FOREIGN KEY (`order_id`) REFERENCES", statements, StringComparison.Ordinal);
        Assert.Equal(before, await SchemaAsync(db));

        var text = await OscRunner.RunAsync("alter", db.Uri, "--table", "orders", "--alter", "RENAME COLUMN shop_id TO store_id", "--foreign-keys", "rebuild", "--native", "off");
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains("Foreign key", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("`_fk_item_order`", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("`_fk_shop`", text.Stdout, StringComparison.Ordinal);
        Assert.Equal(before, await SchemaAsync(db));
    }

    [Theory]
    [InlineData(ChildOfCustomers, "MODIFY customer_id BIGINT NOT NULL", "cannot be carried over")]
    [InlineData(ParentOfItems, "MODIFY id BIGINT NOT NULL AUTO_INCREMENT", "cannot be carried over")]
    [InlineData(ChildOfCustomers, "DROP INDEX ix_customer", "no index starting with (customer_id)")]
    [InlineData(ChildOfCustomers, "DROP COLUMN customer_id", "drops column customer_id")]
    [InlineData(ChildOfCustomers, "DROP FOREIGN KEY fk_customer", "changes foreign keys")]
    public async Task An_alter_that_breaks_a_foreign_key_is_refused_before_the_copy_and_leaves_nothing(string setup, string alter, string expected)
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_broken", setup);
        string before = await SchemaAsync(db);

        // With --native auto, the default: none of these is a catalog change on the planner's empty copy (which has no
        // foreign keys: DROP FOREIGN KEY fails there), so the rebuild's checks run and say what is wrong.
        var result = await OscRunner.RunAsync("alter", db.Uri, "--table", "orders", "--alter", alter, "--foreign-keys", "rebuild", "--execute");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await SchemaAsync(db));
    }

    [Fact]
    public async Task A_child_that_cannot_be_locked_after_the_swap_keeps_the_old_table_and_names_the_statement_to_run()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_locked", ParentOfItems);
        await using var holder = new MySqlConnection(db.ConnectionString);
        await holder.OpenAsync();
        await using (var begin = new MySqlCommand("BEGIN; SELECT COUNT(*) FROM items WHERE id = 1", holder))
        {
            await begin.ExecuteScalarAsync();
        }

        // The open transaction holds a metadata lock on items: the ALTER moving its key waits 1 s, once.
        var result = await OscRunner.RunAsync("alter", db.Uri, "--table", "orders", "--alter", "MODIFY k BIGINT NOT NULL",
            "--foreign-keys", "rebuild", "--drop-old-table", "--execute", "--cut-over-lock-timeout-seconds", "1", "--cut-over-attempts", "1");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Swapped", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("still references", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("ALTER TABLE `" + db.Name + "`.`items` DROP FOREIGN KEY `fk_item_order`", result.Stderr, StringComparison.Ordinal);
        Assert.Equal("orders_osc_old", await db.OscTablesAsync("orders"));
        Assert.Equal("items>orders_osc_old,notes>orders", await ScalarAsync(db.ConnectionString,
            "SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '>', REFERENCED_TABLE_NAME) ORDER BY TABLE_NAME) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"));

        // osc cleanup will not drop the old table either while items references it.
        var cleanup = await OscRunner.RunAsync("cleanup", db.Uri, "--table", "orders", "--drop-old-table");
        Assert.Equal(1, cleanup.ExitCode);
        Assert.Contains("foreign keys still reference it", cleanup.Stderr, StringComparison.Ordinal);
        Assert.Equal("orders_osc_old", await db.OscTablesAsync("orders"));

        // Once the transaction ends, the statement from the message finishes the job.
        await using (var commit = new MySqlCommand("COMMIT", holder))
        {
            await commit.ExecuteNonQueryAsync();
        }

        string hint = result.Stderr[result.Stderr.IndexOf("SET SESSION foreign_key_checks = 0;", StringComparison.Ordinal)..];
        await ExecuteAsync(db.ConnectionString, hint[..(hint.IndexOf("LOCK=NONE", StringComparison.Ordinal) + "LOCK=NONE".Length)]);
        var retry = await OscRunner.RunAsync("cleanup", db.Uri, "--table", "orders", "--drop-old-table");
        Assert.True(retry.ExitCode == 0, retry.Stderr);
        Assert.Equal("", await db.OscTablesAsync("orders"));
    }

    [Fact]
    public async Task A_swap_killed_after_taking_the_keys_from_the_original_gives_them_back_on_resume()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_killed", ChildOfCustomers);
        await KillSwapAfterItTookTheKeysAsync(db);

        var resumed = await OscRunner.RunAsync("alter", db.Uri, "--table", "orders", "--alter", KilledAlter, "--foreign-keys", "rebuild", "--execute", "--resume");

        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal("orders._fk_customer>customers", await ScalarAsync(db.ConnectionString,
            "SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME, '>', REFERENCED_TABLE_NAME)) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"));
        var orphan = await Assert.ThrowsAsync<MySqlException>(() => ExecuteAsync(db.ConnectionString, "INSERT INTO orders (customer_id, k) VALUES (999999, 0)"));
        Assert.Equal(MySqlErrorCode.NoReferencedRow2, orphan.ErrorCode);
        Assert.Equal("30000", await ScalarAsync(db.ConnectionString, "SELECT COUNT(*) FROM orders"));
    }

    [Fact]
    public async Task A_swap_killed_after_taking_the_keys_from_the_original_gets_them_back_from_cleanup_with_a_note()
    {
        OscTestDatabase db = await OscTestDatabase.CreateAsync(servers, "fk_killed_cleanup", ChildOfCustomers);
        await KillSwapAfterItTookTheKeysAsync(db);

        var cleanup = await OscRunner.RunAsync("cleanup", db.Uri, "--table", "orders", "--json");

        Assert.True(cleanup.ExitCode == 0, cleanup.Stderr);
        using var report = System.Text.Json.JsonDocument.Parse(cleanup.Stdout);
        // What the operator must know, not an object kept: the keys are back, unchecked for rows written meanwhile.
        Assert.Empty(report.RootElement.GetProperty("kept").EnumerateArray());
        string note = Assert.Single(report.RootElement.GetProperty("notes").EnumerateArray()).GetString()!;
        Assert.Contains("fk_customer restored", note, StringComparison.Ordinal);
        Assert.Equal("orders.fk_customer>customers", await ScalarAsync(db.ConnectionString,
            "SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME, '>', REFERENCED_TABLE_NAME)) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"));
        var orphan = await Assert.ThrowsAsync<MySqlException>(() => ExecuteAsync(db.ConnectionString, "INSERT INTO orders (customer_id, k) VALUES (999999, 0)"));
        Assert.Equal(MySqlErrorCode.NoReferencedRow2, orphan.ErrorCode);
        Assert.Equal("customers,orders", await ScalarAsync(db.ConnectionString,
            "SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"));
    }

    private const string KilledAlter = "MODIFY k BIGINT NOT NULL DEFAULT 0";

    /// <summary>
    /// Holds a --foreign-keys rebuild run at its postponed swap, does what the swap does in its lock just before the
    /// RENAME (the keys moved from the original to the shadow), and kills the process right there.
    /// </summary>
    private static async Task KillSwapAfterItTookTheKeysAsync(OscTestDatabase db)
    {
        using var flag = new FlagFile("fk");
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string arg in new[] { Path.Combine(AppContext.BaseDirectory, "osc.dll"), "alter", db.Uri, "--table", "orders", "--alter", KilledAlter,
                     "--foreign-keys", "rebuild", "--execute", "--json", "--postpone-cut-over-flag-file", flag.Path })
        {
            start.ArgumentList.Add(arg);
        }

        using var osc = System.Diagnostics.Process.Start(start)!;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            while (await osc.StandardOutput.ReadLineAsync(timeout.Token) is { } line && !line.Contains("postponed", StringComparison.Ordinal))
            {
            }

            Assert.False(osc.HasExited, "osc ended before postponing the swap");
            await ExecuteAsync(db.ConnectionString, """
                SET SESSION foreign_key_checks = 0;
                ALTER TABLE orders_osc_new ADD CONSTRAINT _fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id);
                ALTER TABLE orders DROP FOREIGN KEY fk_customer;
                """);
        }
        finally
        {
            osc.Kill(entireProcessTree: true);
            await osc.WaitForExitAsync();
        }

        Assert.Equal("orders_osc_new._fk_customer", await ScalarAsync(db.ConnectionString,
            "SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME)) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"));
    }

    /// <summary>Every table of the database with its definition and every constraint: what "nothing changed" compares.</summary>
    private static async Task<string> SchemaAsync(OscTestDatabase db) => await ScalarAsync(db.ConnectionString,
        """
        SELECT CONCAT(
          (SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()), '|',
          (SELECT COALESCE(GROUP_CONCAT(CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME, '>', REFERENCED_TABLE_NAME) ORDER BY TABLE_NAME, CONSTRAINT_NAME), '')
           FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()), '|',
          (SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '.', COLUMN_NAME, ' ', COLUMN_TYPE) ORDER BY TABLE_NAME, ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()), '|',
          (SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '.', INDEX_NAME, '.', COLUMN_NAME) ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()))
        """);

    /// <summary>
    /// Orders written for customers, and customers retired the way an application does it: their orders deleted,
    /// then the customer, in one transaction. A shadow holding a foreign key with stale rows would refuse that.
    /// </summary>
    private sealed record ChildLoad(ConcurrentBag<(long Id, int Customer)> Inserted, ConcurrentBag<int> RetiredCustomers, ConcurrentBag<string> Failures)
    {
        public static async Task<ChildLoad> RunAsync(string connectionString, CancellationToken cancellationToken)
        {
            var load = new ChildLoad([], [], []);
            var random = new Random(7);
            var retired = new HashSet<int>();
            await using var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync(CancellationToken.None);
            while (!cancellationToken.IsCancellationRequested)
            {
                int customer = random.Next(1, 2001);
                if (retired.Contains(customer))
                {
                    continue;
                }

                try
                {
                    if (random.Next(8) == 0)
                    {
                        await using var retire = new MySqlCommand(
                            $"START TRANSACTION; DELETE FROM orders WHERE customer_id = {customer}; DELETE FROM customers WHERE id = {customer}; COMMIT", connection);
                        await retire.ExecuteNonQueryAsync(CancellationToken.None);
                        retired.Add(customer);
                        load.RetiredCustomers.Add(customer);
                    }
                    else if (random.Next(2) == 0)
                    {
                        await using var insert = new MySqlCommand($"INSERT INTO orders (customer_id, k) VALUES ({customer}, 0)", connection);
                        await insert.ExecuteNonQueryAsync(CancellationToken.None);
                        load.Inserted.Add((insert.LastInsertedId, customer));
                    }
                    else
                    {
                        await using var update = new MySqlCommand($"UPDATE orders SET k = k + 1 WHERE id = {random.Next(1, 30001)}", connection);
                        await update.ExecuteNonQueryAsync(CancellationToken.None);
                    }
                }
                catch (MySqlException e)
                {
                    load.Failures.Add(e.Message);
                    await using var rollback = new MySqlCommand("ROLLBACK", connection);
                    await rollback.ExecuteNonQueryAsync(CancellationToken.None);
                }

                await Task.Delay(2, CancellationToken.None);
            }

            return load;
        }
    }

    /// <summary>Orders inserted, updated and deleted (new ones, without items), and items added to existing orders.</summary>
    private sealed record ParentLoad(ConcurrentBag<long> InsertedOrders, ConcurrentBag<long> DeletedOrders, ConcurrentBag<long> InsertedItems, ConcurrentBag<string> Failures)
    {
        public static async Task<ParentLoad> RunAsync(string connectionString, CancellationToken cancellationToken)
        {
            var load = new ParentLoad([], [], [], []);
            await RunAsync(connectionString, load, cancellationToken);
            return load;
        }

        /// <summary>Writes into <paramref name="load"/>'s record as it goes, so a test can watch it while it runs.</summary>
        public static async Task RunAsync(string connectionString, ParentLoad load, CancellationToken cancellationToken)
        {
            var random = new Random(5);
            var fresh = new List<long>();
            await using var connection = new MySqlConnection(connectionString);
            await connection.OpenAsync(CancellationToken.None);
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    switch (random.Next(4))
                    {
                        case 0:
                            await using (var insert = new MySqlCommand("INSERT INTO orders (k, note) VALUES (0, 'load')", connection))
                            {
                                await insert.ExecuteNonQueryAsync(CancellationToken.None);
                                load.InsertedOrders.Add(insert.LastInsertedId);
                                fresh.Add(insert.LastInsertedId);
                            }

                            break;
                        case 1 when fresh.Count > 0:
                            long order = fresh[random.Next(fresh.Count)];
                            await using (var delete = new MySqlCommand($"DELETE FROM orders WHERE id = {order}", connection))
                            {
                                await delete.ExecuteNonQueryAsync(CancellationToken.None);
                                load.DeletedOrders.Add(order);
                                fresh.Remove(order);
                            }

                            break;
                        case 2:
                            await using (var item = new MySqlCommand($"INSERT INTO items (order_id) VALUES ({random.Next(3, 20001)})", connection))
                            {
                                await item.ExecuteNonQueryAsync(CancellationToken.None);
                                load.InsertedItems.Add(item.LastInsertedId);
                            }

                            break;
                        default:
                            await using (var update = new MySqlCommand($"UPDATE orders SET k = k + 1 WHERE id = {random.Next(1, 20001)}", connection))
                            {
                                await update.ExecuteNonQueryAsync(CancellationToken.None);
                            }

                            break;
                    }
                }
                catch (MySqlException e)
                {
                    load.Failures.Add(e.Message);
                }

                await Task.Delay(2, CancellationToken.None);
            }
        }
    }
}
