"""Reads that share one connection (the API's, the dispatcher's, the dashboard's) each see the
database as it was when they began, never an older read's snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from heartfly.core.states import CheckState
from heartfly.store import queries
from heartfly.store import sqlite as store
from heartfly.store.backend import open_backend
from heartfly.store.rows import INSERT_OUTBOX, encode_state
from tests.conftest import ConfigWriter
from tests.storeutil import query

NOW = 1_780_000_000.0


async def test_a_read_sees_every_commit_made_before_it_began_while_other_reads_share_its_connection(
    tmp_path: Path,
) -> None:
    """The flaky Healthchecks API test's cause: a count read right after a ping's commit ran in
    the snapshot of a dispatcher read begun before it, and showed one ping fewer."""
    path = tmp_path / "heartfly.db"
    await (await store.Writer.open(path)).close()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            INSERT_OUTBOX, [(i, f"k{i}", 1, "hook", "down", "{}", NOW, NOW + 60, NOW - i) for i in range(1, 30)]
        )
    conn.close()
    reader = await store.open_reader(path)
    writer = sqlite3.connect(path, isolation_level=None)
    stop = asyncio.Event()

    async def others() -> None:  # what the dispatcher and the dashboard read meanwhile
        while not stop.is_set():
            await reader.read_due_alerts(NOW)
            await reader.next_alert_after(NOW - 100)
            await reader.read_checkpoint()

    tasks = [asyncio.create_task(others()) for _ in range(3)]
    try:
        await asyncio.sleep(0)
        for n in range(1, 301):
            writer.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seen', ?)", (str(n),))
            assert await reader.read_meta_prefix("seen") == {"seen": str(n)}
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await reader.close()
        writer.close()


@pytest.mark.both_stores
async def test_every_check_is_read_in_id_order_a_page_at_a_time(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "CHECKS_PAGE", 3)
    config = write_config("")
    backend = await open_backend(config.server)
    inserted: list[int] = []
    try:
        for ids in ([], [1, 2, 3], [4, 5, 6, 8, 9, 12, 13]):  # none, one full page, then pages with gaps
            for i in ids:
                query(config, "INSERT INTO checks (id, name, created_at, state) VALUES (?, ?, 0, ?)",
                      (i, f"c{i}", encode_state(CheckState(last_ping_at=float(i)))))  # fmt: skip
            inserted += ids
            got = await backend.reader.read_checks()
            assert [(c.id, c.name, c.state.last_ping_at) for c in got] == [(i, f"c{i}", float(i)) for i in inserted]
    finally:
        await backend.close()
