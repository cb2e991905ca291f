namespace OnlineSchemaChange.Core;
