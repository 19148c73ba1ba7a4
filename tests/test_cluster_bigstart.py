"""A cluster's first start with a big config (100k checks, all new): making the checks' rows can
take longer than the lease, and the node must still lead, and keep leading, in the term it took.
The start is made slow on purpose (each new check blocks the event loop for a while), as 100k
checks make it on a busy machine; a real node, lease and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from heartfly.core.clock import SystemClock
from heartfly.core.config import CheckConfig, Config, load_config
from heartfly.server import loading
from heartfly.server.checks import Check
from heartfly.server.cluster import Node
from heartfly.server.engine import Engine
from heartfly.store import backend
from heartfly.store import rows as store
from heartfly.store.api import Reader
from tests.conftest import new_key
from tests.test_cluster import (  # noqa: F401 - database: the fixture
    LEASE,
    database,
    every,
    stored,
    until,
    write,
)

CHECKS = 400
BLOCKED = 0.01  # seconds each new check holds the event loop: CHECKS of them, twice the lease


async def test_a_first_start_that_blocks_longer_than_the_lease_still_leads_in_its_first_term(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A first start made every new check's row in one go, with the event loop blocked throughout
    # and the lease kept by nobody (the keeper began after it): past the lease, its commit was
    # refused, the term given up, and the next term redid it all, for ever: no leader, no alert.
    config = load_config(write(tmp_path, database, "".join(every(f"c{i}", new_key(), "1h") for i in range(CHECKS))))
    assert CHECKS * BLOCKED >= 2 * LEASE
    create = Engine._create

    def slow_create(self: Engine, cfg: CheckConfig, now: float, statements: list[store.Statement]) -> Check:
        time.sleep(BLOCKED)
        return create(self, cfg, now, statements)

    monkeypatch.setattr(Engine, "_create", slow_create)
    monkeypatch.setattr(loading, "NEW_ROWS_PER_WRITE", 50)  # several commits, each of a part of the rows
    opened = await backend.open_backend(config.server)
    opened.writer.start()
    try:
        async with aiohttp.ClientSession() as session:
            node = Node(lambda: config, SystemClock(), opened.reader, opened.writer, session, lambda e, d: None)
            await node.start()
            runner = asyncio.create_task(node.run())
            try:

                async def leads() -> bool:
                    return node.leading

                await until(leads, 10 * CHECKS * BLOCKED, "the node leads")
                assert node.term == 1, f"the first term was lost; leads in term {node.term}"
                await asyncio.sleep(2 * LEASE)  # renewed since, while it leads
                assert node.leading and node.term == 1
                assert stored(database, "SELECT count(*) FROM checks") == [(CHECKS,)]
                assert stored(database, "SELECT term FROM lease") == [(1,)]
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                await node.stop()
    finally:
        await opened.close()


def node_of(config: Config, opened: backend.Backend, session: aiohttp.ClientSession) -> Node:
    return Node(lambda: config, SystemClock(), opened.reader, opened.writer, session, lambda e, d: None)


async def test_a_standby_that_takes_the_lease_during_its_slow_first_view_leads_at_once(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A standby's first view (every stored state read: seconds with 100k checks) ran with the lease
    # keeper already going: when the leader died meanwhile, the keeper took the lease, and the node
    # held it, renewed, without leading until the view ended: no deadline fired, and no other node
    # could take over, for as long as the view took.
    await leader_dies_during_a_standbys_view(tmp_path, database, monkeypatch, first=True)


async def test_a_standby_that_takes_the_lease_while_it_rebuilds_a_slow_view_leads_at_once(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # So did the view a standby rebuilds every second or so: the role loop went on with it before
    # it began the term the keeper had taken.
    await leader_dies_during_a_standbys_view(tmp_path, database, monkeypatch, first=False)


async def leader_dies_during_a_standbys_view(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, *, first: bool
) -> None:
    """Node a leads; b's views (its first, in its start, or one in its role loop) never end, as
    a big config's take seconds; a dies meanwhile. b must take over as soon as the lease passes."""
    key = new_key()
    configs = []
    for node_id in ("a", "b"):
        (tmp_path / node_id).mkdir()
        checks = every("job", key, "1h")
        configs.append(load_config(write(tmp_path / node_id, url, checks, f'node_id = "{node_id}"')))
    load = Engine.load
    slow_views, viewing = asyncio.Event(), asyncio.Event()

    async def slow_load(self: Engine, db: Reader, *, view: bool = False, serving_since: float | None = None) -> None:
        if view and slow_views.is_set():
            viewing.set()
            await asyncio.Event().wait()  # not within the test
        await load(self, db, view=view, serving_since=serving_since)

    monkeypatch.setattr(Engine, "load", slow_load)
    opened = [await backend.open_backend(config.server) for config in configs]
    for o in opened:
        o.writer.start()
    try:
        async with aiohttp.ClientSession() as session:
            a, b = (node_of(c, o, session) for c, o in zip(configs, opened, strict=True))
            await a.start()
            a_runs = asyncio.create_task(a.run())
            assert a.leading
            if first:
                slow_views.set()
                b_starts = asyncio.create_task(b.start())
            else:
                await b.start()
                b_runs = asyncio.create_task(b.run())
                slow_views.set()
            await asyncio.wait_for(viewing.wait(), 10 * LEASE)
            a_runs.cancel()  # a dies: its lease is no longer renewed
            await asyncio.gather(a_runs, return_exceptions=True)

            async def b_leads() -> bool:
                return b.leading

            await until(b_leads, 10 * LEASE, "b leads")
            if first:  # its start is over: it went on to lead, not on with the view
                await asyncio.wait_for(b_starts, 10 * LEASE)
                b_runs = asyncio.create_task(b.run())
            await asyncio.sleep(LEASE)
            assert b.leading and b.term == 2
            b_runs.cancel()
            await asyncio.gather(b_runs, return_exceptions=True)
            await b.stop()
            await a.stop()
    finally:
        for o in opened:
            await o.close()


async def test_a_leader_that_lost_its_term_and_takes_the_lease_again_during_its_slow_view_leads_at_once(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A term that ends (its lease passed: a pause, renewals that failed) goes on to a standby's
    # view, built in _end_term: that one was not given up when the node took the lease again
    # meanwhile, and the node held it, renewed, without leading until the view ended.
    config = load_config(write(tmp_path, database, every("job", new_key(), "1h")))
    load = Engine.load
    slow_views, viewing = asyncio.Event(), asyncio.Event()

    async def slow_load(self: Engine, db: Reader, *, view: bool = False, serving_since: float | None = None) -> None:
        if view and slow_views.is_set():
            viewing.set()
            await asyncio.Event().wait()  # not within the test
        await load(self, db, view=view, serving_since=serving_since)

    monkeypatch.setattr(Engine, "load", slow_load)
    opened = await backend.open_backend(config.server)
    opened.writer.start()
    try:
        async with aiohttp.ClientSession() as session:
            node = node_of(config, opened, session)
            renew, renewing = node._renew, asyncio.Event()
            renewing.set()

            async def paused_renew() -> None:  # the keeper's renewals wait while `renewing` is clear
                await renewing.wait()
                await renew()

            node._renew = paused_renew  # type: ignore[method-assign]
            await node.start()
            runs = asyncio.create_task(node.run())
            try:
                assert node.leading
                slow_views.set()
                renewing.clear()  # the lease passes: the term ends, and the view after it never does
                await asyncio.wait_for(viewing.wait(), 10 * LEASE)
                assert not node.leading
                renewing.set()  # the keeper takes the lease again

                async def leads() -> bool:
                    return node.leading

                await until(leads, 10 * LEASE, "the node leads again")
            finally:
                renewing.set()
                runs.cancel()
                await asyncio.gather(runs, return_exceptions=True)
                await node.stop()
    finally:
        await opened.close()


def test_a_sigterm_during_a_long_first_start_stops_the_node_before_it_leads_and_frees_the_lease(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
) -> None:
    # A SIGTERM during a node's start was acted on only once the start had ended: a big first
    # start held the lease (no node leading) for all of it, then led, said it was listening and
    # only then stopped; under systemd, a start longer than TimeoutStopSec (20 s) was killed
    # instead, leaving the lease held until it passed.
    config = write(tmp_path, database, "".join(every(f"c{i}", new_key(), "1h") for i in range(BIG)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "heartfly", "serve", "-c", str(config)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        began = time.monotonic()
        while lease_term(database) < 1:  # the node took the lease: its first term's start is under way
            assert proc.poll() is None and time.monotonic() - began < 120, "the node did not take the lease"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert "leads the cluster" not in err and "listening" not in err, err
    assert "stopping: asked to during the start" in err, err
    assert stored(database, "SELECT holder <> '', expires_at = '-infinity' FROM lease") == [(True, True)]


BIG = 40_000  # checks: a first start of some seconds, all new


def lease_term(url: str) -> int:
    import psycopg

    try:
        return int(stored(url, "SELECT term FROM lease")[0][0])
    except psycopg.errors.UndefinedTable:  # not migrated yet
        return 0


async def test_a_new_leader_whose_deadline_timer_has_not_turned_yet_keeps_its_lease(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A renewal between a term's start and its timer task's first turn (a busy event loop) found the
    # timer "not run for 1796622785 s" (never: its mark was 0) and gave the lease up at once, the
    # node held off from leading for two leases, and nobody fired a deadline meanwhile.
    run_timer = Engine.run_timer

    async def late_timer(self: Engine) -> None:
        await asyncio.sleep(LEASE)  # well within TIMER_STALE, after a renewal or two
        await run_timer(self)

    monkeypatch.setattr(Engine, "run_timer", late_timer)
    config = load_config(write(tmp_path, database, every("job", new_key(), "1h")))
    opened = await backend.open_backend(config.server)
    opened.writer.start()
    try:
        async with aiohttp.ClientSession() as session:
            node = node_of(config, opened, session)
            await node.start()
            runner = asyncio.create_task(node.run())
            try:
                await asyncio.sleep(2 * LEASE)
                assert node.leading and node.term == 1
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                await node.stop()
    finally:
        await opened.close()
