"""The database a test's config names, read and written straight (SQL in SQLite's `?` style)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heartfly.core.config import Config
from heartfly.core.dburl import PostgresDatabase


def sqlite_file(config: Config) -> Path:
    """The SQLite file of a config that names one (the tests of SQLite's own behaviour)."""
    database = config.server.database
    assert isinstance(database, Path), f"a SQLite test got {database}"
    return database


def bytes_read() -> int:
    """What this process (the server and the test's client alike) has read so far: files and sockets."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


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


@contextlib.contextmanager
def writes_fail(config: Config, writer: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every commit with pings fails meanwhile: a full disk for SQLite (its commit made to raise
    what SQLite raises, for a real full disk cannot fail *every* commit: tests/test_faults.py),
    a constraint no ping row meets for PostgreSQL (the server itself refuses the rows)."""
    if isinstance(config.server.database, PostgresDatabase):
        query(config, "ALTER TABLE pings ADD CONSTRAINT disk_full CHECK (false) NOT VALID")
        try:
            yield
        finally:
            query(config, "ALTER TABLE pings DROP CONSTRAINT disk_full")
        return
    from heartfly.store import sqlite as store

    assert isinstance(writer, store.Writer)
    real = writer._commit

    def full_disk(writes: list[Any]) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(writer, "_commit", full_disk)
    try:
        yield
    finally:
        monkeypatch.setattr(writer, "_commit", real)
