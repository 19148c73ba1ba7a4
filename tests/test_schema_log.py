"""What a start logs of the database's schema: a new database is one line, an upgrade each step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import psycopg
import pytest
from psycopg.rows import TupleRow

from heartfly.core.dburl import PostgresDatabase
from heartfly.store import postgres
from heartfly.store import sqlite as store
from heartfly.store.pgconn import connect
from heartfly.store.postgres import migrate
from heartfly.store.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from heartfly.store.schema import MIGRATIONS
from tests import pgserver


async def test_a_new_database_is_said_to_be_created_in_one_line_not_one_per_schema_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "heartfly.db"
    with caplog.at_level(logging.INFO, logger="heartfly.store.sqlite"):
        await (await store.Writer.open(path)).close()
    said = [r.getMessage() for r in caplog.records if "schema version" in r.getMessage()]
    assert said == [f"database {path} created (schema version {len(MIGRATIONS)})"]


async def test_an_older_database_is_said_to_be_migrated_step_by_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "heartfly.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        for number, migration in enumerate(MIGRATIONS[:4], start=1):
            conn.executescript(f"BEGIN; {migration}; PRAGMA user_version = {number}; COMMIT;")
    conn.close()
    with caplog.at_level(logging.INFO, logger="heartfly.store.sqlite"):
        await (await store.Writer.open(path)).close()
    said = [r.getMessage() for r in caplog.records if "schema version" in r.getMessage()]
    assert said == [f"database migrated to schema version {n}" for n in range(5, len(MIGRATIONS) + 1)]


class _Paused:
    """A node's connection that stops once the transaction recording schema version 1 has
    committed, until let go: what another node starting then finds of the new database."""

    def __init__(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        self._conn = conn
        self._recorded = False
        self.held = asyncio.Event()
        self.go = asyncio.Event()

    async def execute(self, query: str | bytes, params: tuple[Any, ...] | None = None) -> Any:
        if isinstance(query, str) and query.startswith("INSERT INTO heartfly_schema") and params == (1,):
            self._recorded = True
        return await self._conn.execute(query, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._conn.transaction():
            yield
        if self._recorded and not self.held.is_set():
            self.held.set()
            await self.go.wait()


async def test_nodes_starting_together_on_a_new_postgresql_database_say_once_that_it_was_created(
    pg_server: pgserver.PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The second node started after the first had recorded version 1: it read the database as
    # one to upgrade, and said it migrated it to each later version, beside the first's "created".
    database = PostgresDatabase(pg_server.database())
    first, second = await connect(database), await connect(database)
    try:
        paused = _Paused(first)
        with caplog.at_level(logging.INFO, logger="heartfly.store.postgres"):
            maker = asyncio.create_task(migrate(cast(Any, paused), database))
            await asyncio.wait([maker, asyncio.create_task(paused.held.wait())], return_when=asyncio.FIRST_COMPLETED)
            await migrate(second, database)
            paused.go.set()
            await maker
    finally:
        await first.close()
        await second.close()
    said = [r.getMessage() for r in caplog.records if "schema version" in r.getMessage()]
    assert said == [f"database {database.shown} created (schema version {len(PG_MIGRATIONS)})"]


async def test_a_new_postgresql_database_is_named_without_its_password_and_an_older_one_migrated_step_by_step(
    pg_server: pgserver.PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    name = pg_server.database().rsplit("/", 1)[1]
    database = PostgresDatabase(f"postgresql://secretive:{quote(pgserver.PASSWORD)}@127.0.0.1:{pg_server.port}/{name}")
    with caplog.at_level(logging.INFO, logger="heartfly.store.postgres"):
        await (await postgres.Writer.open(database)).close()
    said = [r.getMessage() for r in caplog.records if "schema version" in r.getMessage()]
    assert said == [f"database postgresql://secretive:***@127.0.0.1:{pg_server.port}/{name} created (schema version 7)"]
    assert len(PG_MIGRATIONS) == 7 and not [m for m in said if "horse" in m]

    older = PostgresDatabase(pg_server.database())
    async with await psycopg.AsyncConnection.connect(older.url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE heartfly_schema (version INTEGER PRIMARY KEY)")
        for number, migration in enumerate(PG_MIGRATIONS[:2], start=1):
            await conn.execute(migration.encode())
            await conn.execute("INSERT INTO heartfly_schema (version) VALUES (%s)", (number,))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="heartfly.store.postgres"):
        await (await postgres.Writer.open(older)).close()
    said = [r.getMessage() for r in caplog.records if "schema version" in r.getMessage()]
    assert said == [f"database migrated to schema version {n}" for n in range(3, len(PG_MIGRATIONS) + 1)]
