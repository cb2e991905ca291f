namespace OnlineSchemaChange.MySql;
