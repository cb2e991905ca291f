namespace OnlineSchemaChange.Core.Sql;

/// <summary>The lexical rules that differ between the engines: quoting, comments, escapes.</summary>
public enum SqlDialect
{
    /// <summary>MySQL and MariaDB: backtick identifiers, backslash escapes in strings, '#' comments.</summary>
    MySql,

    /// <summary>PostgreSQL: double-quoted identifiers, dollar-quoted strings, E'' escapes.</summary>
    Postgres,
}
