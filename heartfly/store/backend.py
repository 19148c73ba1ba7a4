"""The one place that picks the store from `[server] database`: a path is SQLite, a
postgresql:// URL is PostgreSQL. Callers get the api protocols and never branch on the backend;
the PostgreSQL module (and its driver, an optional extra) is imported only for a URL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from heartfly.core.config import ServerConfig
from heartfly.core.dburl import Database, PostgresDatabase
from heartfly.store.api import OwnWriter, Reader, StoreError


@dataclass(frozen=True, slots=True)
class Backend:
    reader: Reader
    writer: OwnWriter

    async def close(self) -> None:
        """The reader, then the writer (which commits what is still queued)."""
        try:
            await self.reader.close()
        finally:
            await self.writer.close()


async def open_backend(server: ServerConfig) -> Backend:
    """The writer (creating and migrating the database) and a reader of its own; StoreError says
    what failed. The writer is not started yet."""
    writer = await _open_writer(server.database, server.synchronous)
    try:
        reader = await open_reader(server.database)
    except BaseException:
        await writer.close()
        raise
    return Backend(reader, writer)


async def open_reader(database: Database) -> Reader:
    """A reader of a database the server has made; StoreError if it cannot be read or was never made."""
    if isinstance(database, PostgresDatabase):
        _need_driver()
        from heartfly.store import postgres

        return await postgres.open_reader(database)
    from heartfly.store import sqlite

    return await sqlite.open_reader(database)


async def open_existing_reader(database: Database) -> Reader:
    """open_reader for the command line: a database `heartfly serve` has not made yet is named so."""
    if isinstance(database, Path) and not sqlite_file_exists(database):
        raise StoreError(f"no database at {database}: has `heartfly serve` run with this config?")
    reader = await open_reader(database)
    if isinstance(database, Path):
        try:  # the meta table: a file of another program's fails here, not with a traceback mid-command
            await reader.read_checkpoint()
        except sqlite3.Error as exc:
            await reader.close()
            raise StoreError(_unreadable(database, exc)) from None
    return reader


def other_schema(database: Database) -> str | None:
    """Why this version's queries of a run's history cannot read a SQLite database of another
    schema version (sqlite.other_schema); None if they can. A PostgreSQL database's differ only
    in indexes."""
    if isinstance(database, PostgresDatabase):
        return None
    from heartfly.store import sqlite

    return sqlite.other_schema(database)


AS_OWNER = "run this as root or as the server's user"


def sqlite_file_exists(database: Path) -> bool:
    """Whether a SQLite database file is there; StoreError for a folder this user may not look in
    (/var/lib/heartfly is the service's alone), which Path.exists raises as PermissionError."""
    try:
        return database.exists()
    except PermissionError:
        raise StoreError(f"cannot open database {database}: permission denied; {AS_OWNER}") from None


def _unreadable(database: Path, exc: sqlite3.Error) -> str:
    """Why a SQLite file that opened cannot be read. A WAL database is read through its -shm file,
    which SQLite makes beside it: a file or folder this user may not write fails that way, and is
    no sign of a damaged file."""
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
        return f"cannot read database {database} ({exc}): reading it writes {database.name}-shm beside it; {AS_OWNER}"
    return f"cannot use database {database}: not Heartfly's, or damaged ({exc})"


async def create(database: Database) -> None:
    """Make (or migrate) a database as `heartfly serve` would, and close it: migrate-db's target."""
    await (await _open_writer(database)).close()


async def _open_writer(database: Database, synchronous: str = "normal") -> OwnWriter:
    """The writer of a database, which it creates (with its folder) or migrates as needed."""
    if isinstance(database, PostgresDatabase):
        _need_driver()
        from heartfly.store import postgres

        return await postgres.Writer.open(database)
    from heartfly.store import sqlite

    return await sqlite.Writer.open(database, synchronous)


async def read_lease(database: Database) -> tuple[str, int, float] | None:
    """A cluster's lease as the database has it: (holder, term, seconds until it passes; negative
    once passed); None for SQLite. StoreError if it cannot be read."""
    if not isinstance(database, PostgresDatabase):
        return None
    _need_driver()
    from heartfly.store import postgres_lease

    lease = postgres_lease.Lease(database, "heartfly-status", 1.0)
    try:
        held = await lease.holding()
    finally:
        await lease.close()
    return held.holder, held.term, held.expires_in


async def may_come_back(database: Database) -> str | None:
    """Why a database that failed the start may work at a later start by itself (a PostgreSQL
    server that does not answer, pgconn.not_answering), or None: not one that refused this Heartfly."""
    if not isinstance(database, PostgresDatabase):
        return None
    try:
        _need_driver()
    except StoreError:
        return None
    from heartfly.store import pgconn

    return await asyncio.to_thread(pgconn.not_answering, database)


def _need_driver() -> None:
    """StoreError saying how to install the PostgreSQL driver, if it is missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise StoreError(
            f"a postgresql:// database needs the PostgreSQL driver ({exc.name} is missing):"
            " pip install 'heartfly[postgres]'"
        ) from None
