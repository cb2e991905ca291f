namespace OnlineSchemaChange.Core.Connection;

public enum DatabaseEngine
{
    /// <summary>MySQL and MariaDB: one protocol, one engine project; differences are found out from the server.</summary>
    MySql,
    Postgres,
}
