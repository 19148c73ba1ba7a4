"""Storage: the SQLite store (the only code that speaks SQL), its schema and migrations, the read
queries, backups and WAL checkpoints. A second backend lives beside `sqlite`."""
