"""The database a test's config names, read and written straight (SQL in SQLite's `?` style)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from heartfly.core.config import Config


def sqlite_file(config: Config) -> Path:
    """The SQLite file of a config that names one (the tests of SQLite's own behaviour)."""
    database = config.server.database
    assert isinstance(database, Path), f"a SQLite test got {database}"
    return database


def query(config: Config, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one statement, committed (an UPDATE's result is an empty list)."""
    with sqlite3.connect(sqlite_file(config)) as db:
        return list(db.execute(sql, params))
