namespace OnlineSchemaChange.MySql.Binlog;

/// <summary>An event could not be decoded; the message names the file and position of the event.</summary>
public sealed class BinlogDecodeException : Exception
{
    public BinlogDecodeException(string message) : base(message) { }
    public BinlogDecodeException(string message, Exception inner) : base(message, inner) { }
    public BinlogDecodeException() { }
}
