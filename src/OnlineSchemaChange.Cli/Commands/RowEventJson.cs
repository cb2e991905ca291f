using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using OnlineSchemaChange.MySql.Binlog;

namespace OnlineSchemaChange.Cli.Commands;

/// <summary>One JSON object per changed row: {"type","database","table","file","position","gtid","before","after"}.
/// Numbers stay numbers (DECIMAL written exactly), temporal values use MySQL's text forms, binary strings are
/// "0x" hex unless valid UTF-8 was decoded from a schema-less file.</summary>
internal static class RowEventJson
{
    public static void Write(Utf8JsonWriter json, RowsEvent rows, RowChange change)
    {
        json.WriteStartObject();
        json.WriteString("type", rows.Kind switch { RowsEventKind.Insert => "insert", RowsEventKind.Update => "update", _ => "delete" });
        json.WriteString("database", rows.Table.Database);
        json.WriteString("table", rows.Table.Table);
        json.WriteString("file", rows.Coordinates.File);
        json.WriteNumber("position", rows.Coordinates.Position);
        if (rows.Coordinates.Gtid is { } gtid)
        {
            json.WriteString("gtid", gtid);
        }

        if (change.Before is { } before)
        {
            json.WritePropertyName("before");
            WriteImage(json, rows, before);
        }

        if (change.After is { } after)
        {
            json.WritePropertyName("after");
            WriteImage(json, rows, after);
        }

        json.WriteEndObject();
    }

    private static void WriteImage(Utf8JsonWriter json, RowsEvent rows, object?[] values)
    {
        json.WriteStartObject();
        for (var i = 0; i < values.Length; i++)
        {
            if (ReferenceEquals(values[i], RowValues.NotPresent))
            {
                continue;
            }

            json.WritePropertyName(rows.ColumnName(i));
            WriteValue(json, values[i]);
        }

        json.WriteEndObject();
    }

    public static void WriteValue(Utf8JsonWriter json, object? value)
    {
        switch (value)
        {
            case null: json.WriteNullValue(); break;
            case sbyte v: json.WriteNumberValue(v); break;
            case byte v: json.WriteNumberValue(v); break;
            case short v: json.WriteNumberValue(v); break;
            case ushort v: json.WriteNumberValue(v); break;
            case int v: json.WriteNumberValue(v); break;
            case uint v: json.WriteNumberValue(v); break;
            case long v: json.WriteNumberValue(v); break;
            case ulong v: json.WriteNumberValue(v); break;
            case float v: json.WriteNumberValue(v); break;
            case double v: json.WriteNumberValue(v); break;
            case decimal v: json.WriteNumberValue(v); break;
            case ExactDecimal v: json.WriteRawValue(v.ToString()); break;
            case BigInteger v: json.WriteRawValue(v.ToString(CultureInfo.InvariantCulture)); break;
            case string v: json.WriteStringValue(v); break;
            case byte[] v: json.WriteStringValue(BytesText(v)); break;
            default: json.WriteStringValue(Text(value)); break;
        }
    }

    /// <summary>Temporal values as MySQL prints them.</summary>
    public static string Text(object value) => value switch
    {
        DateOnly d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        DateTime d => d.ToString(d.Ticks % TimeSpan.TicksPerSecond == 0 ? "yyyy-MM-dd HH:mm:ss" : "yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture),
        DateTimeOffset d => Text(d.UtcDateTime),
        TimeSpan t => TimeText(t),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    private static string TimeText(TimeSpan t)
    {
        var sign = t < TimeSpan.Zero ? "-" : "";
        var abs = t.Duration();
        var text = string.Create(CultureInfo.InvariantCulture, $"{sign}{(long)abs.TotalHours:D2}:{abs.Minutes:D2}:{abs.Seconds:D2}");
        var micro = abs.Ticks % TimeSpan.TicksPerSecond / 10;
        return micro == 0 ? text : text + "." + micro.ToString("D6", CultureInfo.InvariantCulture);
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static string BytesText(byte[] bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return "0x" + Convert.ToHexString(bytes);
        }
    }
}
