using OnlineSchemaChange.Core;
using OnlineSchemaChange.Core.Migration;

namespace OnlineSchemaChange.Tests.Core;

public sealed class LeftoverSessionsTests
{
    /// <summary>A server's session list: ended sessions leave it after <see cref="RollbackPolls"/> more looks.</summary>
    private sealed class FakeServer(params LeftoverSession[] sessions)
    {
        private readonly Dictionary<long, int> _ending = [];

        public int RollbackPolls { get; init; } = 2;

        public List<long> Ended { get; } = [];

        public LeftoverSessionControl Control => new(
            _ => Task.FromResult<IReadOnlyList<LeftoverSession>>(sessions),
            (session, _) =>
            {
                Ended.Add(session.Id);
                _ending[session.Id] = RollbackPolls;
                return Task.CompletedTask;
            },
            (ids, _) =>
            {
                bool any = false;
                foreach (long id in ids)
                {
                    if (_ending.TryGetValue(id, out int left) && left > 0)
                    {
                        _ending[id] = left - 1;
                        any = true;
                    }
                    else if (!_ending.ContainsKey(id))
                    {
                        any = true;
                    }
                }

                return Task.FromResult(any);
            },
            "the list");
    }

    [Fact]
    public async Task Nothing_left_ends_nothing_and_notes_nothing()
    {
        var server = new FakeServer();

        IReadOnlyList<string> notes = await LeftoverSessions.EndAsync(server.Control, "db.t_osc_new", CancellationToken.None);

        Assert.Empty(notes);
        Assert.Empty(server.Ended);
    }

    [Fact]
    public async Task Each_session_is_ended_and_waited_for_until_it_has_rolled_back_with_a_note_naming_it()
    {
        var server = new FakeServer(new LeftoverSession(7, "INSERT INTO `t_osc_new`"), new LeftoverSession(9, "REPLACE INTO `t_osc_new`"));

        IReadOnlyList<string> notes = await LeftoverSessions.EndAsync(server.Control, "db.t_osc_new", CancellationToken.None);

        Assert.Equal([7L, 9L], server.Ended);
        Assert.Equal(2, notes.Count);
        Assert.StartsWith("Ended session 7, ", notes[0], StringComparison.Ordinal);
        Assert.Contains("INSERT INTO `t_osc_new`", notes[0], StringComparison.Ordinal);
        Assert.StartsWith("Ended session 9, ", notes[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_session_still_there_after_the_wait_is_an_error_naming_it_and_where_to_look()
    {
        var server = new FakeServer(new LeftoverSession(7, "INSERT INTO `t_osc_new`")) { RollbackPolls = int.MaxValue };

        var error = await Assert.ThrowsAsync<OscException>(() =>
            LeftoverSessions.EndAsync(server.Control, "db.t_osc_new", CancellationToken.None, TimeSpan.FromMilliseconds(250)));

        Assert.Contains("Sessions 7,", error.Message, StringComparison.Ordinal);
        Assert.Contains("db.t_osc_new", error.Message, StringComparison.Ordinal);
        Assert.Contains("the list", error.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public void The_run_in_progress_refusal_names_the_holder_and_how_to_end_it_or_only_the_lock_when_no_holder_is_found()
    {
        OscException named = LeftoverSessions.RunInProgress("db.t", "the lock osc-run.db.t", "session 12 holds its lock osc-run.db.t (sleep for 3 s)",
            "Cleaning up would remove the shadow it is writing.", "KILL 12");
        OscException unnamed = LeftoverSessions.RunInProgress("db.t", "the lock osc-run.db.t", null, null, null);

        Assert.Equal("An osc run on db.t is in progress: session 12 holds its lock osc-run.db.t (sleep for 3 s). Cleaning up would remove the shadow it is writing.",
            named.Message);
        Assert.EndsWith("wait for it, or end it (KILL 12), then run again.", named.Hint, StringComparison.Ordinal);
        Assert.Equal("An osc run on db.t is in progress (it holds the lock osc-run.db.t).", unnamed.Message);
        Assert.Equal("Let it finish, or stop it (Ctrl-C keeps its work for --resume).", unnamed.Hint);
    }
}
