namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>The bytes on the wire (or in a binlog file) do not match the documented layout.</summary>
public sealed class MySqlProtocolException : Exception
{
    public MySqlProtocolException(string message) : base(message) { }
    public MySqlProtocolException(string message, Exception inner) : base(message, inner) { }
    public MySqlProtocolException() { }
}

/// <summary>The server answered with an ERR packet.</summary>
public sealed class MySqlServerException : Exception
{
    public MySqlServerException(int errorCode, string sqlState, string message)
        : base($"MySQL error {errorCode} ({sqlState}): {message}")
    {
        ErrorCode = errorCode;
        SqlState = sqlState;
        ServerMessage = message;
    }

    public MySqlServerException() { SqlState = ""; ServerMessage = ""; }
    public MySqlServerException(string message) : base(message) { SqlState = ""; ServerMessage = message; }
    public MySqlServerException(string message, Exception inner) : base(message, inner) { SqlState = ""; ServerMessage = message; }

    public int ErrorCode { get; }
    public string SqlState { get; }
    public string ServerMessage { get; }
}
