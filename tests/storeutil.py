"""The database a test's config names, read and written straight (SQL in SQLite's `?` style)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from heartfly.core.config import Config
from heartfly.core.dburl import PostgresDatabase


def sqlite_file(config: Config) -> Path:
    """The SQLite file of a config that names one (the tests of SQLite's own behaviour)."""
    database = config.server.database
    assert isinstance(database, Path), f"a SQLite test got {database}"
    return database


def query(config: Config, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one statement, committed (an UPDATE's result is an empty list), on either store."""
    database = config.server.database
    if isinstance(database, PostgresDatabase):
        import psycopg

        from heartfly.store.pgconn import to_pg

        with psycopg.connect(database.url, autocommit=True) as conn:
            cur = conn.execute(to_pg(sql)[0].encode(), params)
            return list(cur.fetchall()) if cur.description is not None else []
    with sqlite3.connect(database) as db:
        return list(db.execute(sql, params))
