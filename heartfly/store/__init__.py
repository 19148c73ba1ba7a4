"""Storage, the only code that speaks SQL: its surface (api: the Reader and WriteQueue protocols),
the rows and statements a write is made of (rows), the SQLite store (sqlite, schema, queries),
backups and WAL checkpoints. A second backend lives beside `sqlite`, implementing api."""
