"""The writer thread: group commit, and checkpoints that do not hold pings back."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from pathlib import Path

import pytest

from heartfly.core.states import CheckState, Status
from heartfly.store import sqlite as store


def _insert_checks(path: Path, n: int) -> None:
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO checks (id, name, created_at, state) VALUES (?, ?, 0, ?)",
            [(i, f"c{i}", store.encode_state(CheckState())) for i in range(1, n + 1)],
        )


async def test_a_large_checkpoint_is_split_into_batches_that_commit_in_order(tmp_path: Path) -> None:
    path = tmp_path / "heartfly.db"
    writer = await store.Writer.open(path)
    n = 3 * store.STATES_PER_BATCH + 7
    _insert_checks(path, n)
    writer.start()
    try:
        order: list[str] = []
        for i in range(1, n + 1):
            st = CheckState(status=Status.UP, last_ping_at=float(i))
            writer.submit_nowait(store.Write(state=store.StateRow(i, st, i)))
        commits_before = writer.commits
        mark = store.meta_statement("checkpoint", str(n))
        writer.submit_nowait(store.Write(statements=[mark], on_commit=lambda: order.append("mark")))
        await writer.flush()
        assert writer.commits - commits_before >= 4  # 607 states, at most 200 a batch
    finally:
        await writer.close()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, state, state_ping_id FROM checks ORDER BY id").fetchall()
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    assert order == ["mark"] and value == str(n)
    assert [(r[0], r[2]) for r in rows] == [(i, i) for i in range(1, n + 1)]
    assert all(store.decode_state(r[1]).last_ping_at == float(r[0]) for r in rows)


async def test_a_ping_queued_behind_a_large_checkpoint_commits_before_all_of_it(tmp_path: Path) -> None:
    path = tmp_path / "heartfly.db"
    writer = await store.Writer.open(path)
    n = 5 * store.STATES_PER_BATCH
    _insert_checks(path, n)
    writer.start()
    try:
        committed: list[int] = []
        for i in range(1, n + 1):
            row = store.StateRow(i, CheckState(status=Status.UP), i)
            writer.submit_nowait(store.Write(state=row, on_commit=functools.partial(committed.append, i)))
            if i == store.STATES_PER_BATCH:
                ping: store.PingRow = (1, 1, 1.0, 1.0, "success", None, None, "", 0, None, "GET", "", "", None, None)
                done = writer.submit(store.Write(ping=ping))
        await done
        assert len(committed) < n  # the ping did not wait for the whole checkpoint
        await writer.flush()
        assert committed == list(range(1, n + 1))
    finally:
        await writer.close()


async def test_the_wal_is_copied_into_the_database_file_by_its_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "heartfly.db"
    writer = await store.Writer.open(path)
    _insert_checks(path, 1)
    writer.start()
    try:
        before = path.stat().st_size
        body = "x" * 4000
        for i in range(1, 301):  # ~1.2 MB of WAL, far below the writer's own checkpoint threshold
            ping: store.PingRow = (i, 1, 1.0, 1.0, "log", None, None, body, 0, None, "POST", "", "", None, None)
            await writer.submit(store.Write(ping=ping))
        for _ in range(250):
            if path.stat().st_size > before + 1_000_000:
                break
            await asyncio.sleep(0.02)
        assert path.stat().st_size > before + 1_000_000
    finally:
        await writer.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM pings").fetchone() == (300,)


async def test_an_error_in_a_commit_callback_is_logged_and_the_writer_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "heartfly.db"
    writer = await store.Writer.open(path)
    _insert_checks(path, 1)
    writer.start()

    def broken() -> None:
        raise RuntimeError("a bug in a callback")

    try:
        async with asyncio.timeout(5):  # a writer that stopped would leave these waiting for ever
            await writer.submit(store.Write(statements=[store.meta_statement("a", "1")], on_commit=broken))
            ping: store.PingRow = (1, 1, 1.0, 1.0, "success", None, None, "", 0, None, "GET", "", "", None, None)
            await writer.submit(store.Write(ping=ping))
    finally:
        async with asyncio.timeout(5):
            await writer.close()
    assert "a callback of a database write failed" in caplog.text
