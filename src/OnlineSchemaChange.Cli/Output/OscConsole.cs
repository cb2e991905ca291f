using System.Text.Json;
using System.Text.Json.Serialization;
using OnlineSchemaChange.Core;
using Spectre.Console;

namespace OnlineSchemaChange.Cli.Output;

/// <summary>
/// Where the commands write: human output through Spectre.Console, JSON for scripts on stdout, errors on stderr
/// (and as JSON on stdout too when --json, so a script always has something to parse).
/// </summary>
internal sealed class OscConsole(TextWriter stdout, TextWriter stderr, bool interactive)
{
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public IAnsiConsole Ansi { get; } = CreateAnsi(stdout, interactive);

    private static IAnsiConsole CreateAnsi(TextWriter stdout, bool interactive)
    {
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
        });

        // Piped output goes to logs and files, where wrapping SQL at 80 columns only hurts.
        if (!interactive)
        {
            console.Profile.Width = 160;
        }

        return console;
    }

    /// <summary>Text passed through as it is, unwrapped, on stdout: an answer a script reads.</summary>
    public void WriteText(string text)
    {
        lock (_writing)
        {
            stdout.WriteLine(text);
            stdout.Flush();
        }
    }

    public void WriteJson<T>(T value) => stdout.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    /// <summary>One JSON object on one line: the form of progress events, which scripts read line by line.</summary>
    public void WriteJsonLine<T>(T value)
    {
        string line = JsonSerializer.Serialize(value, JsonLineOptions);
        lock (_writing)
        {
            stdout.WriteLine(line);
            stdout.Flush();
        }
    }

    // The control socket reports from its own thread while the migration reports progress from others.
    private readonly Lock _writing = new();

    /// <summary>A progress line for people, on stderr so stdout stays clean for the result.</summary>
    private bool _progressLineOpen;

    /// <summary>Lines others write for people (a hook's output): on stderr, each after any progress line drawn in place.</summary>
    public TextWriter Lines => new LineWriter(this);

    public void Progress(string line)
    {
        lock (_writing)
        {
            EndProgressLine();
            stderr.WriteLine(line);
            stderr.Flush();
        }
    }

    /// <summary>On a terminal, redraws one progress line in place; otherwise writes a line per report, for logs.</summary>
    public void ProgressInPlace(string line)
    {
        if (!interactive)
        {
            Progress(line);
            return;
        }

        lock (_writing)
        {
            stderr.Write("\r\u001b[2K" + line);
            stderr.Flush();
            _progressLineOpen = true;
        }
    }

    /// <summary>Ends a line drawn in place, so what follows starts on a line of its own.</summary>
    public void EndProgressLine()
    {
        lock (_writing)
        {
            if (_progressLineOpen)
            {
                stderr.WriteLine();
                _progressLineOpen = false;
            }
        }
    }

    private static readonly JsonSerializerOptions JsonLineOptions = new(JsonOptions) { WriteIndented = false };

    public void WriteError(OscException error, bool asJson)
    {
        ArgumentNullException.ThrowIfNull(error);
        stderr.WriteLine($"error: {error.Message}");
        if (error.Hint is not null)
        {
            stderr.WriteLine($"  fix: {error.Hint}");
        }

        if (asJson)
        {
            WriteJson(new { error = error.Message, hint = error.Hint });
        }
    }

    public string? PromptSecret(string prompt)
    {
        if (!interactive)
        {
            throw new OscException("--ask-pass needs a terminal to prompt on.", "Set OSC_PASSWORD (or MYSQL_PWD / PGPASSWORD) instead.");
        }

        return Ansi.Prompt(new TextPrompt<string>(prompt).Secret().AllowEmpty());
    }

    private sealed class LineWriter(OscConsole console) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void WriteLine(string? value) => console.Progress(value ?? "");
    }
}
