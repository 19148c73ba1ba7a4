"""Reads that share one connection (the API's, the dispatcher's, the dashboard's) each see the
database as it was when they began, never an older read's snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from heartfly.store import sqlite as store
from heartfly.store.rows import INSERT_OUTBOX

NOW = 1_780_000_000.0


async def test_a_read_sees_every_commit_made_before_it_began_while_other_reads_share_its_connection(
    tmp_path: Path,
) -> None:
    """The flaky Healthchecks API test's cause: a count read right after a ping's commit ran in
    the snapshot of a dispatcher read begun before it, and showed one ping fewer."""
    path = tmp_path / "heartfly.db"
    await (await store.Writer.open(path)).close()
    writer = sqlite3.connect(path, isolation_level=None)
    alerts = [(i, f"k{i}", 1, "hook", "down", "{}", NOW, NOW + 60, NOW - i) for i in range(1, 30)]
    writer.executemany(INSERT_OUTBOX, alerts)
    reader = await store.open_reader(path)
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
