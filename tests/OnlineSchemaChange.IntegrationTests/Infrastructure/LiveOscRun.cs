using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using OnlineSchemaChange.Cli;

namespace OnlineSchemaChange.IntegrationTests.Infrastructure;

/// <summary>
/// The `osc` command line run in-process in the background, its output readable line by line while it runs: how a
/// test watches the --json progress of a migration and acts at a given phase.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The writers hold only a StringBuilder: nothing to dispose.")]
public sealed class LiveOscRun
{
    private readonly LineWriter _stdout = new();
    private readonly LineWriter _stderr = new();

    private LiveOscRun(string[] args)
    {
        Completion = Task.Run(async () =>
        {
            int code = await OscApp.RunAsync(args, _stdout, _stderr, interactive: false, CancellationToken.None);
            return new OscRunner.Result(code, _stdout.Text, _stderr.Text);
        });
    }

    public Task<OscRunner.Result> Completion { get; }

    public static LiveOscRun Start(params string[] args) => new(args);

    /// <summary>Every JSON object printed on stdout so far (progress lines and the final result), in order.</summary>
    public IReadOnlyList<JsonElement> JsonEvents => ParseAll(_stdout.Text);

    /// <summary>Waits until a JSON event matches, failing if the run ends first or the timeout passes.</summary>
    public async Task<JsonElement> WaitForEventAsync(Func<JsonElement, bool> match, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            foreach (JsonElement e in JsonEvents)
            {
                if (match(e))
                {
                    return e;
                }
            }

            if (Completion.IsCompleted)
            {
                OscRunner.Result r = await Completion;
                Assert.Fail($"osc ended (exit {r.ExitCode}) before {what}. stderr: {r.Stderr}");
            }

            Assert.True(clock.Elapsed < timeout, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    /// <summary>Waits for a progress line that pauses for a reason containing <paramref name="reason"/> ("" for any reason).</summary>
    public Task<JsonElement> WaitForThrottledAsync(string reason, TimeSpan timeout) =>
        WaitForEventAsync(e => e.TryGetProperty("throttled", out JsonElement r) && r.ValueKind == JsonValueKind.String && r.GetString()!.Contains(reason, StringComparison.Ordinal),
            timeout, $"a progress line throttled by '{reason}'");

    /// <summary>Each top-level JSON value of a text holding JSON lines and indented JSON alike.</summary>
    public static IReadOnlyList<JsonElement> ParseAll(string text)
    {
        var values = new List<JsonElement>();
        int end = text.LastIndexOf('\n');
        if (end < 0)
        {
            return values;
        }

        // Only complete lines: a line being written is parsed on the next call.
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(text[..end]), new JsonReaderOptions { AllowMultipleValues = true });
        try
        {
            while (reader.Read())
            {
                using var document = JsonDocument.ParseValue(ref reader);
                values.Add(document.RootElement.Clone());
            }
        }
        catch (JsonException)
        {
            // An indented value not finished yet.
        }

        return values;
    }

    private sealed class LineWriter : TextWriter
    {
        private readonly StringBuilder _text = new();

        public override Encoding Encoding => Encoding.UTF8;

        public string Text
        {
            get
            {
                lock (_text)
                {
                    return _text.ToString();
                }
            }
        }

        public override void Write(char value)
        {
            lock (_text)
            {
                _text.Append(value);
            }
        }

        public override void Write(string? value)
        {
            lock (_text)
            {
                _text.Append(value);
            }
        }
    }
}
