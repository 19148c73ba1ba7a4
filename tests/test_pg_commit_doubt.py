"""A commit whose answer never comes (the connection lost right after COMMIT went out): the
PostgreSQL writer asks the server whether it was done, so a commit that was done counts as done;
one that was not, or whose outcome is not learned in time, is retried with the next, which skips
the flips and alerts in already. A real PostgreSQL behind a TCP proxy that loses what the test
tells it to."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg
import pytest

from heartfly.core.dburl import PostgresDatabase
from heartfly.core.statetypes import CheckState
from heartfly.store import postgres
from heartfly.store.api import StoreError
from heartfly.store.pgconn import connect
from heartfly.store.postgres import Writer, migrate
from heartfly.store.rows import Write, encode_state
from tests import pgserver

COMMIT = b"COMMIT\x00"


class Proxy:
    """Passes bytes between clients and PostgreSQL, except what it is told to lose: the next
    COMMIT (`lose="commit"`) or the answer to it (`lose="answer"`), cutting that connection;
    `refuse` closes every new connection at once (a server not reached)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lose: str | None = None
        self.refuse = False
        self.lost = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.refuse:
            client_w.transport.abort()
            return
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.port)
        answer_lost = asyncio.Event()

        def cut() -> None:
            self.lose = None
            self.lost.set()
            client_w.transport.abort()
            server_w.transport.abort()

        async def upstream() -> None:
            with contextlib.suppress(OSError):
                while data := await client_r.read(65536):
                    if COMMIT in data and self.lose == "commit":
                        cut()
                        return
                    if COMMIT in data and self.lose == "answer":
                        answer_lost.set()
                    server_w.write(data)
                    await server_w.drain()

        async def downstream() -> None:
            with contextlib.suppress(OSError):
                while data := await server_r.read(65536):
                    if answer_lost.is_set():  # the server's answer to the COMMIT
                        cut()
                        return
                    client_w.write(data)
                    await client_w.drain()

        await asyncio.gather(upstream(), downstream())


@pytest.fixture
async def proxied(pg_server: pgserver.PgServer) -> AsyncIterator[tuple[Proxy, PostgresDatabase, PostgresDatabase]]:
    """(the proxy, the database through it, the database direct), one check (id 1) in it."""
    direct = PostgresDatabase(pg_server.database())
    conn = await connect(direct)
    try:
        await migrate(conn, direct)
        await conn.execute(
            "INSERT INTO checks (id, name, created_at, state) VALUES (1, 'job', 0, %s)", (encode_state(CheckState()),)
        )
    finally:
        await conn.close()
    proxy = Proxy(pg_server.port)
    port = await proxy.start()
    try:
        yield proxy, PostgresDatabase(direct.url.replace(f":{pg_server.port}/", f":{port}/")), direct
    finally:
        proxy.close()


def a_failure(n: int) -> Write:
    """A timer's flip and a run's end: no ping, so a failed commit carries them to the next."""
    at = 1000.0 + n
    return Write(
        flip=(n, 1, at, "up", "down", "failed", None, f"failure {n}", at),
        runs=[(1, f"run-{n}", at - 1, at, "fail", 1, f"failure {n}", None)],
    )


def stored(database: PostgresDatabase) -> tuple[list[int], list[str]]:
    with psycopg.connect(database.url) as conn:
        flips = [int(r[0]) for r in conn.execute("SELECT id FROM flips ORDER BY id")]
        runs = [str(r[0]) for r in conn.execute("SELECT run_id FROM runs ORDER BY run_id")]
    return flips, runs


@contextlib.asynccontextmanager
async def started(database: PostgresDatabase) -> AsyncIterator[Writer]:
    writer = await Writer.open(database)
    writer.start()
    try:
        yield writer
    finally:
        await writer.close()


async def test_a_commit_done_whose_answer_was_lost_counts_as_committed_and_is_not_repeated(
    proxied: tuple[Proxy, PostgresDatabase, PostgresDatabase],
) -> None:
    proxy, through, direct = proxied
    async with started(through) as writer:
        proxy.lose = "answer"
        await asyncio.wait_for(writer.submit(a_failure(1)), 10)  # done, though its answer was lost
        assert proxy.lost.is_set()
        await asyncio.wait_for(writer.submit(a_failure(2)), 10)
        assert not writer.failing
    assert stored(direct) == ([1, 2], ["run-1", "run-2"])


async def test_a_commit_that_never_reached_the_server_fails_and_its_rows_commit_once_with_the_next(
    proxied: tuple[Proxy, PostgresDatabase, PostgresDatabase],
) -> None:
    proxy, through, direct = proxied
    async with started(through) as writer:
        proxy.lose = "commit"
        with pytest.raises(StoreError):
            await asyncio.wait_for(writer.submit(a_failure(1)), 10)
        await asyncio.wait_for(writer.submit(a_failure(2)), 10)  # carries the first
        assert not writer.failing
    assert stored(direct) == ([1, 2], ["run-1", "run-2"])


async def test_a_commit_whose_outcome_is_not_learned_in_time_is_retried_and_its_flip_is_not_written_twice(
    proxied: tuple[Proxy, PostgresDatabase, PostgresDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "IN_DOUBT_WAIT", 0.3)
    proxy, through, direct = proxied
    async with started(through) as writer:
        proxy.lose, proxy.refuse = "answer", True
        with pytest.raises(StoreError):  # done, but that cannot be learned yet: refused (503) meanwhile
            await asyncio.wait_for(writer.submit(a_failure(1)), 10)
        assert writer.failing
        proxy.refuse = False
        # The first's flip and run, carried to this commit, are in already.
        await asyncio.wait_for(writer.submit(a_failure(2)), 10)
        assert not writer.failing
    # The flip is not written twice (nor does it fail every later commit on its id, as before); the
    # run, which has no id of its own, is: the one trace of a commit whose outcome came too late.
    assert stored(direct) == ([1, 2], ["run-1", "run-1", "run-2"])


async def test_a_write_after_the_server_ended_the_writers_idle_session_commits_on_a_new_one(
    proxied: tuple[Proxy, PostgresDatabase, PostgresDatabase],
) -> None:
    # A PostgreSQL restart (or failover, or an operator's pg_terminate_backend) ends the writer's
    # session while it is idle; the writer learned it only from its next commit, which failed:
    # the first pings after the restart answered 503, though the server was back and /readyz said
    # 200, and a leader's deadlines waited for the next commit.
    _, _, direct = proxied
    async with started(direct) as writer:
        await asyncio.wait_for(writer.submit(a_failure(1)), 10)
        with psycopg.connect(direct.url, autocommit=True) as conn:
            others = "datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")
            for _ in range(500):  # the sessions end on their own time
                if conn.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {others}").fetchone() == (0,):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the writer's session was not ended")
        await asyncio.wait_for(writer.submit(a_failure(2)), 10)
        assert not writer.failing
    assert stored(direct) == ([1, 2], ["run-1", "run-2"])
