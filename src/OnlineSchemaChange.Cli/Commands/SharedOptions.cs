using System.CommandLine;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>
/// The options more than one command takes, each defined once: its name, short alias, type and whether it is
/// required are the same on every command, so `-t` or a missing `--table` behave alike everywhere. Each command still
/// says in its own help what the option means there, and gets its own instance: an option's description belongs to
/// one command's help.
/// </summary>
internal static class SharedOptions
{
    public const string TableToAlter = "The table to alter: name or schema.name";

    public static Option<string> Table(string description) => new("--table", "-t") { Description = description, Required = true };

    public static Option<string> Alter(string description) => new("--alter", "-a") { Description = description, Required = true };

    public static Option<bool> Json(string description) => new("--json") { Description = description };

    public static Option<bool> DropOldTable(string description) => new("--drop-old-table") { Description = description };

    /// <summary>Refuses a value below <paramref name="minimum"/> as the command line is parsed, so a dry run refuses it too.</summary>
    public static Option<int> AtLeast(this Option<int> option, int minimum)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.Validators.Add(result =>
        {
            int value = result.GetValueOrDefault<int>();
            if (value < minimum)
            {
                result.AddError($"{option.Name} must be at least {minimum}, not {value}.");
            }
        });
        return option;
    }
}
