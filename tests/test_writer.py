"""The writer: group commit, and checkpoints that do not hold pings back (both stores); SQLite's
own WAL copier."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heartfly.core.config import Config
from heartfly.core.states import CheckState, Status
from heartfly.store import rows, wal
from heartfly.store import sqlite as store
from heartfly.store.api import OwnWriter, StoreError
from heartfly.store.backend import open_backend
from heartfly.store.groupcommit import STATES_PER_BATCH
from tests.conftest import ConfigWriter
from tests.storeutil import query


def _insert_checks(config: Config, n: int) -> None:
    # One statement for any n, on either store: a recursive count, as both speak it.
    query(
        config,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO checks (id, name, created_at, state) SELECT i, 'c' || i, 0, ? FROM n",
        (n, rows.encode_state(CheckState())),
    )


@contextlib.asynccontextmanager
async def opened(write_config: ConfigWriter, checks: int) -> AsyncIterator[tuple[Config, OwnWriter]]:
    """The config's database made, `checks` checks in it, and its writer started (closed after)."""
    config = write_config("")
    backend = await open_backend(config.server)
    try:
        _insert_checks(config, checks)
        backend.writer.start()
        yield config, backend.writer
    finally:
        async with asyncio.timeout(5):  # a writer that stopped would leave this waiting for ever
            await backend.close()


@pytest.mark.both_stores
async def test_a_large_checkpoint_is_split_into_batches_that_commit_in_order(write_config: ConfigWriter) -> None:
    n = 3 * STATES_PER_BATCH + 7
    order: list[str] = []
    async with opened(write_config, n) as (config, writer):
        for i in range(1, n + 1):
            st = CheckState(status=Status.UP, last_ping_at=float(i))
            writer.submit_nowait(rows.Write(state=rows.StateRow(i, st, i)))
        commits_before = writer.commits
        mark = rows.meta_statement("checkpoint", str(n))
        writer.submit_nowait(rows.Write(statements=[mark], on_commit=lambda: order.append("mark")))
        await writer.flush()
        assert writer.commits - commits_before >= 4  # 607 states, at most 200 a batch
    checks = query(config, "SELECT id, state, state_ping_id FROM checks ORDER BY id")
    [(value,)] = query(config, "SELECT value FROM meta WHERE key = 'checkpoint'")
    assert order == ["mark"] and value == str(n)
    assert [(r[0], r[2]) for r in checks] == [(i, i) for i in range(1, n + 1)]
    assert all(rows.decode_state(r[1]).last_ping_at == float(r[0]) for r in checks)


@pytest.mark.both_stores
async def test_statements_of_one_sql_text_in_a_row_run_as_one_batch_in_their_order(write_config: ConfigWriter) -> None:
    # A first start inserts every check with a statement of its own: runs of one SQL text go to
    # the database as one executemany each, and the order of the statements still decides.
    async with opened(write_config, 1) as (config, writer):
        statements = [rows.insert_check_statement(i, f"c{i}", 1.0, CheckState()) for i in (11, 12, 13)]
        statements += [rows.removed_statement(12, 5.0), rows.removed_statement(13, 6.0)]
        statements.append(rows.removed_statement(12, None))
        statements.append(rows.removed_statement(12, 7.0))  # the same text as two before, not next to it
        statements.append(rows.insert_check_statement(14, "c14", 1.0, CheckState()))
        writer.submit_nowait(rows.Write(statements=statements))
        await writer.flush()
    checks = query(config, "SELECT id, name, removed_at FROM checks WHERE id > 10 ORDER BY id")
    assert [tuple(r) for r in checks] == [(11, "c11", None), (12, "c12", 7.0), (13, "c13", 6.0), (14, "c14", None)]


@pytest.mark.both_stores
async def test_a_ping_queued_behind_a_large_checkpoint_commits_before_all_of_it(write_config: ConfigWriter) -> None:
    n = 5 * STATES_PER_BATCH
    async with opened(write_config, n) as (_, writer):
        committed: list[int] = []
        for i in range(1, n + 1):
            row = rows.StateRow(i, CheckState(status=Status.UP), i)
            writer.submit_nowait(rows.Write(state=row, on_commit=functools.partial(committed.append, i)))
            if i == STATES_PER_BATCH:
                ping: rows.PingRow = (1, 1, 1.0, 1.0, "success", None, None, "", 0, None, "GET", "", "", None, None)
                done = writer.submit(rows.Write(ping=ping))
        await done
        assert len(committed) < n  # the ping did not wait for the whole checkpoint
        await writer.flush()
        assert committed == list(range(1, n + 1))


async def test_the_wal_is_copied_into_the_database_file_by_its_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "heartfly.db"
    writer = await store.Writer.open(path)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO checks (id, name, created_at, state) VALUES (1, 'c1', 0, ?)",
                   (rows.encode_state(CheckState()),))  # fmt: skip
    writer.start()
    try:
        before = path.stat().st_size
        body = "x" * 4000
        for i in range(1, 301):  # ~1.2 MB of WAL, far below the writer's own checkpoint threshold
            ping: rows.PingRow = (i, 1, 1.0, 1.0, "log", None, None, body, 0, None, "POST", "", "", None, None)
            await writer.submit(rows.Write(ping=ping))
        for _ in range(250):
            if path.stat().st_size > before + 1_000_000:
                break
            await asyncio.sleep(0.02)
        assert path.stat().st_size > before + 1_000_000
    finally:
        await writer.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM pings").fetchone() == (300,)


@pytest.mark.both_stores
async def test_an_error_in_a_commit_callback_is_logged_and_the_writer_carries_on(
    write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("a bug in a callback")

    async with opened(write_config, 1) as (_, writer), asyncio.timeout(5):  # a stopped writer: waits for ever
        await writer.submit(rows.Write(statements=[rows.meta_statement("a", "1")], on_commit=broken))
        ping: rows.PingRow = (1, 1, 1.0, 1.0, "success", None, None, "", 0, None, "GET", "", "", None, None)
        await writer.submit(rows.Write(ping=ping))
    assert "a callback of a database write failed" in caplog.text


async def test_an_abandoned_writer_refuses_every_later_write_at_once(tmp_path: Path) -> None:
    writer = await store.Writer.open(tmp_path / "hb.db")
    writer.start()
    try:
        await writer.abandon("this node no longer leads")
        with pytest.raises(StoreError, match="no longer leads"):
            await asyncio.wait_for(writer.submit(rows.Write(statements=[rows.alive_statement(1.0)])), 1)
        with pytest.raises(StoreError, match="no longer leads"):
            await asyncio.wait_for(writer.flush(), 1)
        writer.submit_nowait(rows.Write(statements=[rows.alive_statement(2.0)]))  # dropped, not queued for ever
        assert writer.failing
    finally:
        await writer.close()


@contextlib.asynccontextmanager
async def sqlite_writer(
    path: Path, synchronous: str = "normal"
) -> AsyncIterator[tuple[store.Writer, list[tuple[str, int]]]]:
    """A started SQLite writer on a database with one check, and each COMMIT it runs with the
    thread it ran in (the connection's trace callback, called in that thread)."""
    writer = await store.Writer.open(path, synchronous)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO checks (id, name, created_at, state) VALUES (1, 'c1', 0, ?)",
                   (rows.encode_state(CheckState()),))  # fmt: skip
    commits: list[tuple[str, int]] = []

    def traced(sql: str) -> None:
        if sql == "COMMIT":
            commits.append((sql, threading.get_ident()))

    await writer._thread.run(writer._conn.set_trace_callback, traced)
    writer.start()
    try:
        for _ in range(100):  # the WAL's first reading: until then nothing commits in the loop
            if writer._wal.frames is not None:
                break
            await asyncio.sleep(0.01)
        yield writer, commits
    finally:
        await writer.close()


def _ping(ping_id: int) -> rows.PingRow:
    return (ping_id, 1, 1.0, 1.0, "success", None, None, "", 0, None, "GET", "", "", None, None)


async def test_a_lone_ping_commits_in_the_event_loop_and_a_batch_in_the_writer_thread(tmp_path: Path) -> None:
    async with sqlite_writer(tmp_path / "hb.db") as (writer, commits):
        await writer.submit(rows.Write(ping=_ping(1)))
        assert commits == [("COMMIT", threading.get_ident())]
        commits.clear()
        await asyncio.gather(*(writer.submit(rows.Write(ping=_ping(i))) for i in range(2, 12)))
        assert commits and all(ident != threading.get_ident() for _, ident in commits)
        commits.clear()
        await writer.submit(rows.Write(statements=[rows.alive_statement(1.0)]))  # a statement: may be long
        assert commits and commits[0][1] != threading.get_ident()
    with sqlite3.connect(tmp_path / "hb.db") as db:
        assert db.execute("SELECT COUNT(*) FROM pings").fetchone() == (11,)


async def test_with_synchronous_full_a_lone_ping_commits_in_the_writer_thread(tmp_path: Path) -> None:
    async with sqlite_writer(tmp_path / "hb.db", "full") as (writer, commits):  # an fsync per commit
        await writer.submit(rows.Write(ping=_ping(1)))
        assert len(commits) == 1 and commits[0][1] != threading.get_ident()


async def test_a_lone_ping_commits_in_the_writer_thread_when_the_wal_nears_the_writers_own_checkpoint(
    tmp_path: Path,
) -> None:
    async with sqlite_writer(tmp_path / "hb.db") as (writer, commits):
        writer._wal.stop()  # its readings would overwrite the one set here
        writer._wal.frames = wal.NEAR_LIMIT
        await writer.submit(rows.Write(ping=_ping(1)))
        assert len(commits) == 1 and commits[0][1] != threading.get_ident()


async def test_a_lone_ping_waits_in_the_writer_thread_not_the_event_loop_while_another_connection_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hb.db"
    async with sqlite_writer(path) as (writer, commits):
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        try:
            done = writer.submit(rows.Write(ping=_ping(1)))
            ticks = 0
            for _ in range(20):  # the loop goes on meanwhile
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 20 and not done.done()
        finally:
            other.execute("COMMIT")
            other.close()
        await asyncio.wait_for(done, 5)
        assert len(commits) == 1 and commits[0][1] != threading.get_ident()
        commits.clear()
        await writer.submit(rows.Write(ping=_ping(2)))  # the lock gone: in the loop again
        assert commits == [("COMMIT", threading.get_ident())]
