using System.CommandLine;
using OnlineSchemaChange.Cli;
using OnlineSchemaChange.Cli.Output;

namespace OnlineSchemaChange.Tests.Cli;

/// <summary>An option several commands take parses the same on each of them: names, aliases, values and errors.</summary>
public sealed class SharedOptionsTests
{
    private const string Server = "mysql://u@127.0.0.1:3306/db";

    private static RootCommand Root() => OscApp.Build(new OscConsole(TextWriter.Null, TextWriter.Null, interactive: false));

    private static ParseResult Parse(params string[] args) => Root().Parse(args);

    /// <summary>What each command needs besides the option under test, so that only that option decides the outcome.</summary>
    private static string[] Rest(string command, string without) => (command, without) switch
    {
        ("plan" or "alter", "--table") => [Server, "--alter", "ADD c INT"],
        ("plan" or "alter", "--alter") => [Server, "--table", "t"],
        ("plan" or "alter", _) => [Server, "--table", "t", "--alter", "ADD c INT"],
        ("cleanup", "--table") => [Server],
        ("cleanup", _) => [Server, "--table", "t"],
        ("binlog", _) => [Server],
        _ => throw new ArgumentOutOfRangeException(nameof(command), command, "not a command of osc"),
    };

    [Fact]
    public void Every_option_repeated_between_commands_is_defined_alike()
    {
        var repeated = Root().Subcommands
            .SelectMany(c => c.Options.Select(o => (Command: c.Name, Option: o)))
            .GroupBy(x => x.Option.Name)
            .Where(g => g.Count() > 1)
            .ToDictionary(g => g.Key, g => g.ToList());

        Assert.Equal(["alter", "cleanup", "control", "plan"], repeated["--table"].Select(x => x.Command).Order());

        // osc control names the run by its socket or by its table: there, and only there, --table is optional.
        Option controlTable = repeated["--table"].Single(x => x.Command == "control").Option;
        Assert.False(controlTable.Required);
        Assert.Equal(repeated["--table"][0].Option.Aliases.Order(), controlTable.Aliases.Order());
        repeated["--table"].RemoveAll(x => x.Command == "control");
        Assert.Equal(["alter", "plan"], repeated["--alter"].Select(x => x.Command).Order());
        Assert.Equal(["alter", "binlog", "cleanup", "plan"], repeated["--json"].Select(x => x.Command).Order());
        Assert.Equal(["alter", "cleanup"], repeated["--drop-old-table"].Select(x => x.Command).Order());
        foreach (var (name, uses) in repeated)
        {
            Option first = uses[0].Option;
            foreach (var (command, option) in uses.Skip(1))
            {
                Assert.Equal(first.Aliases.Order(), option.Aliases.Order());
                Assert.True(first.Required == option.Required, $"{name}: required on one command, optional on {command}");
                Assert.True(first.ValueType == option.ValueType, $"{name}: {first.ValueType} on {uses[0].Command}, {option.ValueType} on {command}");
                Assert.True(first.Arity.Equals(option.Arity), $"{name}: arity differs on {command}");
                Assert.False(string.IsNullOrWhiteSpace(option.Description), $"{name} has no help on {command}");
            }
        }
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("alter")]
    [InlineData("cleanup")]
    public void Table_parses_long_and_short_and_is_required_alike(string command)
    {
        foreach (string flag in new[] { "--table", "-t" })
        {
            ParseResult result = Parse([command, .. Rest(command, "--table"), flag, "shop.orders"]);
            Assert.Empty(result.Errors);
            Assert.Equal("shop.orders", result.GetValue<string>("--table"));
        }

        ParseResult missing = Parse([command, .. Rest(command, "--table")]);
        Assert.Equal(["Option '--table' is required."], missing.Errors.Select(e => e.Message));
        ParseResult twice = Parse([command, .. Rest(command, "--table"), "-t", "a", "-t", "b"]);
        Assert.Equal(["Option '-t' expects a single argument but 2 were provided."], twice.Errors.Select(e => e.Message));
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("alter")]
    public void Alter_parses_long_and_short_and_is_required_alike(string command)
    {
        foreach (string flag in new[] { "--alter", "-a" })
        {
            ParseResult result = Parse([command, .. Rest(command, "--alter"), flag, "MODIFY k BIGINT"]);
            Assert.Empty(result.Errors);
            Assert.Equal("MODIFY k BIGINT", result.GetValue<string>("--alter"));
        }

        ParseResult missing = Parse([command, .. Rest(command, "--alter")]);
        Assert.Equal(["Option '--alter' is required."], missing.Errors.Select(e => e.Message));
    }

    [Theory]
    [InlineData("plan", "--json")]
    [InlineData("alter", "--json")]
    [InlineData("cleanup", "--json")]
    [InlineData("binlog", "--json")]
    [InlineData("alter", "--drop-old-table")]
    [InlineData("cleanup", "--drop-old-table")]
    public void A_shared_flag_is_off_by_default_and_on_when_given(string command, string flag)
    {
        ParseResult absent = Parse([command, .. Rest(command, flag)]);
        ParseResult given = Parse([command, .. Rest(command, flag), flag]);
        ParseResult explicitFalse = Parse([command, .. Rest(command, flag), flag, "false"]);

        Assert.Empty(absent.Errors);
        Assert.Empty(given.Errors);
        Assert.Empty(explicitFalse.Errors);
        Assert.False(absent.GetValue<bool>(flag));
        Assert.True(given.GetValue<bool>(flag));
        Assert.False(explicitFalse.GetValue<bool>(flag));
    }
}
