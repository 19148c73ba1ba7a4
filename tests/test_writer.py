"""The writer: group commit, and checkpoints that do not hold pings back (both stores); SQLite's
own WAL copier."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import closing
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


async def abandoned_during_a_commit(
    writer: store.Writer, monkeypatch: pytest.MonkeyPatch, then: Callable[[list[rows.Write]], None]
) -> tuple[asyncio.Future[None], asyncio.Future[None]]:
    """Meta "a" submitted, its commit held in the writer thread; "b" queued behind it; then the
    writer abandoned, and the commit let go (`then` runs there). Returns the two writes' futures."""
    go = threading.Event()

    def held(writes: list[rows.Write]) -> None:  # in the writer thread
        go.wait(5)
        then(writes)

    monkeypatch.setattr(writer, "_commit", held)
    writer.start()
    try:
        under_way = writer.submit(rows.Write(statements=[rows.meta_statement("a", "1")]))
        while not writer._committing:
            await asyncio.sleep(0.001)
        behind = writer.submit(rows.Write(statements=[rows.meta_statement("b", "2")]))
        abandoning = asyncio.create_task(writer.abandon("this node no longer leads"))
        await asyncio.sleep(0.05)
    finally:
        go.set()
    await asyncio.wait_for(abandoning, 5)
    return under_way, behind


async def test_an_abandoned_writer_lets_the_commit_under_way_end_and_tells_its_waiters_it_was_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A leader that lost its lease while the database works: that batch's pings are stored, and
    # a 503 would have them sent again (and stored twice). What is queued behind it is dropped.
    writer = await store.Writer.open(tmp_path / "hb.db")
    try:
        under_way, behind = await abandoned_during_a_commit(writer, monkeypatch, writer._commit)
        await under_way  # committed, and told so
        with pytest.raises(StoreError, match="no longer leads"):
            await behind
    finally:
        await writer.close()
    with sqlite3.connect(tmp_path / "hb.db") as db:
        assert db.execute("SELECT key, value FROM meta WHERE key IN ('a', 'b')").fetchall() == [("a", "1")]
    db.close()


async def test_a_commit_under_way_that_fails_as_writes_are_abandoned_tells_its_waiters_and_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A takeover ends the old leader's session: its last commit fails, which is no database failing.
    def ended(writes: list[rows.Write]) -> None:
        raise sqlite3.OperationalError("terminating connection due to administrator command")

    writer = await store.Writer.open(tmp_path / "hb.db")
    try:
        under_way, behind = await abandoned_during_a_commit(writer, monkeypatch, ended)
        with pytest.raises(StoreError, match="administrator command"):
            await under_way
        with pytest.raises(StoreError, match="no longer leads"):
            await behind
    finally:
        await writer.close()
    assert "database write failed" not in caplog.text


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


async def test_the_wal_file_shrinks_back_to_its_bound_after_a_long_reader_let_it_grow(tmp_path: Path) -> None:
    # A backup's VACUUM INTO holds one snapshot for its whole run, and the WAL grows past its bound
    # meanwhile: without journal_size_limit its file kept that size for as long as the server ran.
    database = tmp_path / "hb.db"
    writer = await store.Writer.open(database)
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("INSERT INTO checks (id, name, created_at, state) VALUES (1, 'a', 0, '{}')")
    writer.start()
    body = "x" * 20_000

    def ping(n: int) -> rows.Write:
        return rows.Write(ping=(n, 1, 1.0, 1.0, "log", None, None, body, 0, None, "POST", "", "", None, None))

    try:
        reader = sqlite3.connect(database, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM pings").fetchone()  # a snapshot, held as a backup's is
        for n in range(1, 1501):  # 30 MB of pings while it is held
            await writer.submit(ping(n))
        grown = os.path.getsize(f"{database}-wal")
        reader.execute("COMMIT")
        reader.close()
        for n in range(1501, 1601):  # the WAL is copied, then restarted from its beginning
            await writer.submit(ping(n))
            await asyncio.sleep(0.01)
        await asyncio.sleep(wal.CHECKPOINT_EVERY * 5)
        for n in range(1601, 1611):
            await writer.submit(ping(n))
        size = os.path.getsize(f"{database}-wal")
    finally:
        await writer.close()
    assert grown > 25_000_000
    assert size <= wal.WRITER_LIMIT * 1024 + 1_000_000, f"the WAL file stays at {size / 1e6:.0f} MB"


async def test_a_database_path_that_is_a_symlink_opens_and_is_watched_and_locked_where_it_points(
    tmp_path: Path,
) -> None:
    # SQLite keeps the WAL of a symlinked database beside the file the link names.
    (tmp_path / "data").mkdir()
    link = tmp_path / "hb.db"
    link.symlink_to(tmp_path / "data" / "hb.db")
    writer = await store.Writer.open(link)
    try:
        assert writer.lost is None and (tmp_path / "data" / "hb.db.lock").exists()
        with pytest.raises(StoreError, match="in use by another heartfly serve"):
            await store.Writer.open(tmp_path / "data" / "hb.db")  # the same database, by its own name
    finally:
        await writer.close()
