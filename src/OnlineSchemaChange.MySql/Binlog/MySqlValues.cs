using System.Globalization;
using System.Numerics;

namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>A DECIMAL too wide for <see cref="decimal"/> (more than 28 digits): exact unscaled integer and scale.</summary>
public readonly record struct ExactDecimal(BigInteger Unscaled, int Scale)
{
    public override string ToString()
    {
        var digits = BigInteger.Abs(Unscaled).ToString(CultureInfo.InvariantCulture).PadLeft(Scale + 1, '0');
        var text = Scale == 0 ? digits : digits[..^Scale] + "." + digits[^Scale..];
        return Unscaled.Sign < 0 ? "-" + text : text;
    }
}

/// <summary>A DATE, DATETIME or TIMESTAMP that has no <see cref="DateTime"/> (zero date, zero month or day):
/// kept as its parts and printed as MySQL prints it.</summary>
public readonly record struct MySqlDateTimeParts(int Year, int Month, int Day, int Hour, int Minute, int Second, int Microsecond, int Fsp, bool HasTime)
{
    public override string ToString()
    {
        var date = string.Create(CultureInfo.InvariantCulture, $"{Year:D4}-{Month:D2}-{Day:D2}");
        if (!HasTime)
        {
            return date;
        }

        var time = string.Create(CultureInfo.InvariantCulture, $"{date} {Hour:D2}:{Minute:D2}:{Second:D2}");
        return Fsp == 0 ? time : time + "." + Microsecond.ToString("D6", CultureInfo.InvariantCulture)[..Fsp];
    }
}
