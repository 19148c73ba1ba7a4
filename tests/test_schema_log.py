"""What a start logs of the database's schema: a new file is one line, an upgrade each step."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from heartfly.store import sqlite as store
from heartfly.store.schema import MIGRATIONS


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
