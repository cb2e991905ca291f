using System.Security.Cryptography;
using System.Text;

namespace OnlineSchemaChange.Core.Migration;

/// <summary>
/// The names of every table a migration creates next to the original, documented so an operator recognises them and
/// `osc cleanup` finds them: _&lt;table&gt;_osc_new (the shadow), _osc_old (the original after the swap), _osc_log
/// (heartbeats and checkpoints), _osc_del (the cut-over's sentry). A name that would pass the engine's identifier
/// limit keeps a prefix of the table name plus a short hash of the whole, so two long names never collide.
/// </summary>
public sealed class ShadowNames
{
    public ShadowNames(string table, int maxLength)
    {
        ArgumentException.ThrowIfNullOrEmpty(table);
        Table = table;
        Shadow = Make(table, "new", maxLength);
        Old = Make(table, "old", maxLength);
        Log = Make(table, "log", maxLength);
        Sentry = Make(table, "del", maxLength);
    }

    public string Table { get; }

    public string Shadow { get; }

    public string Old { get; }

    public string Log { get; }

    public string Sentry { get; }

    /// <summary>Every name we may have created, for cleanup.</summary>
    public IEnumerable<string> Created => [Shadow, Log, Sentry];

    private static string Make(string table, string role, int maxLength)
    {
        string name = $"_{table}_osc_{role}";
        if (name.Length <= maxLength)
        {
            return name;
        }

        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(table)))[..8];
        int keep = maxLength - $"__{hash}_osc_{role}".Length;
        return $"_{table[..keep]}_{hash}_osc_{role}";
    }
}
