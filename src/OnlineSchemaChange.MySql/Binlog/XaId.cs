using System.Globalization;
using System.Text;

namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>
/// The identifier of an XA transaction: format id, global transaction id (gtrid) and branch qualifier (bqual), both
/// up to 64 bytes of any value. Kept as hex so that two identifiers compare by their bytes, whichever way a statement
/// spelt them ('a', X'61', 0x61). Printed the way the server writes it into the binlog: X'gtrid',X'bqual',format.
/// </summary>
public readonly record struct XaId(long FormatId, string GtridHex, string BqualHex)
{
    public static XaId FromBytes(long formatId, ReadOnlySpan<byte> gtrid, ReadOnlySpan<byte> bqual) =>
        new(formatId, Convert.ToHexString(gtrid), Convert.ToHexString(bqual));

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"X'{GtridHex}',X'{BqualHex}',{FormatId}");

    /// <summary>
    /// Reads the statement that completes a prepared XA transaction, as the binlog holds it: <c>XA COMMIT xid</c>
    /// (optionally <c>ONE PHASE</c>) or <c>XA ROLLBACK xid</c>, where xid is <c>gtrid [, bqual [, formatID]]</c> and
    /// each string is quoted ('...' or "..."), hexadecimal (X'..' or 0x..) or binary (B'..'). Servers write
    /// X'gtrid',X'bqual',formatID; the other spellings are accepted so that nothing the grammar allows is misread.
    /// </summary>
    public static bool TryParseCompletion(string sql, out XaCompletion completion)
    {
        ArgumentNullException.ThrowIfNull(sql);
        completion = default;
        var text = new Scanner(sql);
        if (!text.Keyword("XA"))
        {
            return false;
        }

        bool commit;
        if (text.Keyword("COMMIT"))
        {
            commit = true;
        }
        else if (text.Keyword("ROLLBACK"))
        {
            commit = false;
        }
        else
        {
            return false;
        }

        if (!text.String(out byte[] gtrid))
        {
            return false;
        }

        byte[] bqual = [];
        long format = 1; // the grammar's default
        if (text.Symbol(','))
        {
            if (!text.String(out bqual))
            {
                return false;
            }

            if (text.Symbol(',') && !text.Number(out format))
            {
                return false;
            }
        }

        bool onePhase = commit && text.Keyword("ONE") && text.Keyword("PHASE");
        if (!text.AtEnd)
        {
            return false;
        }

        completion = new XaCompletion(FromBytes(format, gtrid, bqual), commit, onePhase);
        return true;
    }

    /// <summary>A small reader for the XA statement grammar: keywords, string literals, numbers, comments.</summary>
    private ref struct Scanner(string text)
    {
        private readonly string _text = text;
        private int _at;

        public bool AtEnd
        {
            get
            {
                SkipSpace();
                return _at >= _text.Length || _text[_at] == ';';
            }
        }

        public bool Keyword(string word)
        {
            SkipSpace();
            if (_at + word.Length > _text.Length || string.Compare(_text, _at, word, 0, word.Length, StringComparison.OrdinalIgnoreCase) != 0)
            {
                return false;
            }

            int end = _at + word.Length;
            if (end < _text.Length && (char.IsLetterOrDigit(_text[end]) || _text[end] == '_'))
            {
                return false;
            }

            _at = end;
            return true;
        }

        public bool Symbol(char c)
        {
            SkipSpace();
            if (_at < _text.Length && _text[_at] == c)
            {
                _at++;
                return true;
            }

            return false;
        }

        public bool Number(out long value)
        {
            SkipSpace();
            int start = _at;
            if (_at < _text.Length && (_text[_at] == '-' || _text[_at] == '+'))
            {
                _at++;
            }

            while (_at < _text.Length && char.IsAsciiDigit(_text[_at]))
            {
                _at++;
            }

            return long.TryParse(_text.AsSpan(start, _at - start), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
        }

        public bool String(out byte[] value)
        {
            SkipSpace();
            value = [];
            if (_at >= _text.Length)
            {
                return false;
            }

            char c = _text[_at];
            if ((c is 'X' or 'x') && Next(1) == '\'')
            {
                _at += 2;
                return Until('\'', out string hex) && TryHex(hex, out value);
            }

            if (c == '0' && Next(1) is 'x' or 'X')
            {
                _at += 2;
                int start = _at;
                while (_at < _text.Length && char.IsAsciiHexDigit(_text[_at]))
                {
                    _at++;
                }

                return TryHex(_text[start.._at], out value);
            }

            if ((c is 'B' or 'b') && Next(1) == '\'')
            {
                _at += 2;
                return Until('\'', out string bits) && TryBits(bits, out value);
            }

            if (c is '\'' or '"')
            {
                _at++;
                return Quoted(c, out value);
            }

            return false;
        }

        private readonly char Next(int offset) => _at + offset < _text.Length ? _text[_at + offset] : '\0';

        private bool Until(char end, out string content)
        {
            int close = _text.IndexOf(end, _at);
            content = close < 0 ? "" : _text[_at..close];
            _at = close < 0 ? _text.Length : close + 1;
            return close >= 0;
        }

        // A doubled quote is one quote; a backslash escapes the next character (the default sql_mode's rules).
        private bool Quoted(char quote, out byte[] value)
        {
            var content = new StringBuilder();
            while (_at < _text.Length)
            {
                char c = _text[_at++];
                if (c == quote)
                {
                    if (_at < _text.Length && _text[_at] == quote)
                    {
                        content.Append(quote);
                        _at++;
                        continue;
                    }

                    value = Encoding.UTF8.GetBytes(content.ToString());
                    return true;
                }

                if (c == '\\' && _at < _text.Length)
                {
                    char escaped = _text[_at++];
                    content.Append(escaped switch { '0' => '\0', 'n' => '\n', 'r' => '\r', 't' => '\t', 'b' => '\b', 'Z' => '\x1A', _ => escaped });
                    continue;
                }

                content.Append(c);
            }

            value = [];
            return false;
        }

        private void SkipSpace()
        {
            while (_at < _text.Length)
            {
                if (char.IsWhiteSpace(_text[_at]))
                {
                    _at++;
                }
                else if (_text[_at] == '/' && Next(1) == '*')
                {
                    int close = _text.IndexOf("*/", _at + 2, StringComparison.Ordinal);
                    _at = close < 0 ? _text.Length : close + 2;
                }
                else
                {
                    return;
                }
            }
        }

        private static bool TryHex(string hex, out byte[] value)
        {
            value = [];
            if (hex.Length % 2 == 1)
            {
                hex = "0" + hex;
            }

            try
            {
                value = Convert.FromHexString(hex);
                return true;
            }
            catch (FormatException)
            {
                return false;
            }
        }

        private static bool TryBits(string bits, out byte[] value)
        {
            value = [];
            if (bits.Any(b => b is not '0' and not '1'))
            {
                return false;
            }

            int bytes = (bits.Length + 7) / 8;
            bits = bits.PadLeft(bytes * 8, '0');
            value = new byte[bytes];
            for (int i = 0; i < bytes; i++)
            {
                value[i] = System.Convert.ToByte(bits.Substring(i * 8, 8), 2);
            }

            return true;
        }
    }
}

/// <summary>An XA COMMIT or XA ROLLBACK statement: which transaction, and how it ends.</summary>
public readonly record struct XaCompletion(XaId Xid, bool Commit, bool OnePhase);
