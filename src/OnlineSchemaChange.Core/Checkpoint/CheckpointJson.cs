using System.Globalization;
using System.Text;
using System.Text.Json;
using OnlineSchemaChange.Core.Changes;
using OnlineSchemaChange.Core.Copy;

namespace OnlineSchemaChange.Core.Checkpoint;

/// <summary>
/// The checkpoint as one JSON object, for stores that keep text. Key values carry their type, so a watermark comes
/// back as the same CLR values the copy compared and bound (a long stays a long, bytes stay bytes), not as whatever a
/// JSON number or string would be read as.
/// </summary>
public static class CheckpointJson
{
    public static string Serialize(MigrationCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("version", 1);
            json.WriteString("statement", checkpoint.Statement);
            json.WriteString("digest", checkpoint.Digest);
            json.WriteBoolean("copyFinished", checkpoint.CopyFinished);
            json.WriteString("position", checkpoint.Position);
            json.WriteNumber("rowsCopied", checkpoint.RowsCopied);
            json.WriteString("time", checkpoint.Time);
            json.WritePropertyName("watermark");
            WriteKey(json, checkpoint.Watermark);
            json.WriteStartArray("copiedAhead");
            foreach (CopiedRange range in checkpoint.CopiedAhead)
            {
                json.WriteStartObject();
                json.WritePropertyName("after");
                WriteKey(json, range.LowerExclusive);
                json.WritePropertyName("through");
                WriteKey(json, range.UpperInclusive);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static MigrationCheckpoint Deserialize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        try
        {
            using var document = JsonDocument.Parse(text);
            JsonElement root = document.RootElement;
            int version = root.GetProperty("version").GetInt32();
            if (version != 1)
            {
                throw new OscException($"The checkpoint was written by another version of osc (format {version}).",
                    "Resume with the version that started the migration, or remove its leftovers with `osc cleanup`.");
            }

            return new MigrationCheckpoint(
                root.GetProperty("statement").GetString()!,
                root.GetProperty("digest").GetString()!,
                ReadKey(root.GetProperty("watermark")),
                root.GetProperty("copyFinished").GetBoolean(),
                root.GetProperty("position").GetString()!,
                root.GetProperty("rowsCopied").GetInt64(),
                root.GetProperty("time").GetDateTimeOffset())
            {
                // Absent from checkpoints written before it was recorded: those ranges are then copied again.
                CopiedAhead = root.TryGetProperty("copiedAhead", out JsonElement ahead)
                    ? ahead.EnumerateArray().Select(r => new CopiedRange(
                        ReadKey(r.GetProperty("after")) ?? throw new FormatException("a copied range without its lower bound"),
                        ReadKey(r.GetProperty("through")))).ToArray()
                    : [],
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new OscException($"The stored checkpoint cannot be read: {e.Message}",
                "Remove the leftovers with `osc cleanup` and start the migration again.", e);
        }
    }

    public static void WriteKey(Utf8JsonWriter json, RowKey? key)
    {
        ArgumentNullException.ThrowIfNull(json);
        if (key is null)
        {
            json.WriteNullValue();
            return;
        }

        json.WriteStartArray();
        foreach (object? value in key.Values)
        {
            json.WriteStartObject();
            (string type, string? text) = Encode(value);
            json.WriteString("type", type);
            if (text is null)
            {
                json.WriteNull("value");
            }
            else
            {
                json.WriteString("value", text);
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    public static RowKey? ReadKey(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return new RowKey(element.EnumerateArray()
            .Select(v => Decode(v.GetProperty("type").GetString()!, v.GetProperty("value").GetString()))
            .ToArray());
    }

    private static (string Type, string? Text) Encode(object? value)
    {
        var c = CultureInfo.InvariantCulture;
        return value switch
        {
            null => ("null", null),
            string s => ("string", s),
            bool b => ("bool", b ? "true" : "false"),
            sbyte n => ("int8", n.ToString(c)),
            byte n => ("uint8", n.ToString(c)),
            short n => ("int16", n.ToString(c)),
            ushort n => ("uint16", n.ToString(c)),
            int n => ("int32", n.ToString(c)),
            uint n => ("uint32", n.ToString(c)),
            long n => ("int64", n.ToString(c)),
            ulong n => ("uint64", n.ToString(c)),
            decimal n => ("decimal", n.ToString(c)),
            float n => ("float", n.ToString("R", c)),
            double n => ("double", n.ToString("R", c)),
            byte[] bytes => ("bytes", Convert.ToBase64String(bytes)),
            DateTime t => ("datetime", t.ToString("O", c)),
            DateTimeOffset t => ("datetimeoffset", t.ToString("O", c)),
            DateOnly d => ("date", d.ToString("O", c)),
            TimeOnly t => ("time", t.ToString("O", c)),
            TimeSpan t => ("timespan", t.ToString("c", c)),
            Guid g => ("guid", g.ToString("D")),
            _ => throw new NotSupportedException($"A key value of type {value.GetType().Name} cannot be written into a checkpoint."),
        };
    }

    private static object? Decode(string type, string? text)
    {
        var c = CultureInfo.InvariantCulture;
        if (type == "null")
        {
            return null;
        }

        ArgumentNullException.ThrowIfNull(text);
        return type switch
        {
            "string" => text,
            "bool" => bool.Parse(text),
            "int8" => sbyte.Parse(text, c),
            "uint8" => byte.Parse(text, c),
            "int16" => short.Parse(text, c),
            "uint16" => ushort.Parse(text, c),
            "int32" => int.Parse(text, c),
            "uint32" => uint.Parse(text, c),
            "int64" => long.Parse(text, c),
            "uint64" => ulong.Parse(text, c),
            "decimal" => decimal.Parse(text, NumberStyles.Number, c),
            "float" => float.Parse(text, NumberStyles.Float, c),
            "double" => double.Parse(text, NumberStyles.Float, c),
            "bytes" => Convert.FromBase64String(text),
            "datetime" => DateTime.Parse(text, c, DateTimeStyles.RoundtripKind),
            "datetimeoffset" => DateTimeOffset.Parse(text, c, DateTimeStyles.RoundtripKind),
            "date" => DateOnly.ParseExact(text, "O", c),
            "time" => TimeOnly.ParseExact(text, "O", c),
            "timespan" => TimeSpan.ParseExact(text, "c", c),
            "guid" => Guid.ParseExact(text, "D"),
            _ => throw new FormatException($"unknown key value type '{type}'"),
        };
    }
}
