"""What a standby's /readyz says while it rebuilds its picture of the states (a big config takes
seconds): a real leader process, a standby made in this process, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from heartfly.core.config import load_config
from heartfly.server import liveness, viewage
from heartfly.server.engine import Engine
from heartfly.store.api import Reader, StoreError
from heartfly.web.app import create_app
from tests.conftest import new_key
from tests.proc import Server
from tests.test_cluster import database, every, readiness, until, write  # noqa: F401 - database: the fixture
from tests.webutil import Client

STALE = 2.0  # liveness.TIMER_STALE here: a rebuild held longer than this is one of a big config


async def test_a_standby_stays_ready_while_its_picture_of_the_states_takes_longer_than_the_timer_stall(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The standby's liveness was marked by its role loop only between two rebuilds of its view:
    # a rebuild longer than TIMER_STALE (100k checks take seconds) made /readyz answer 503, "the
    # deadline timer is not running", on a standby that has no timer and took pings all along,
    # and a load balancer took it out at each rebuild.
    path = write(tmp_path, database, every("job", new_key(), "1h"))
    monkeypatch.setattr(liveness, "TIMER_STALE", STALE)
    leader = Server(path)
    await asyncio.to_thread(leader.start)
    try:
        async with aiohttp.ClientSession() as session:

            async def leads() -> bool:
                return bool((await readiness(session, leader))["role"] == "leader")

            await until(leads, 10, "the leader leads")
        hold, held, release, load = asyncio.Event(), asyncio.Event(), asyncio.Event(), Engine.load

        async def slow_view(self: Engine, db: Reader, *, view: bool = False, **kw: Any) -> None:
            if view and hold.is_set():
                held.set()
                await release.wait()  # a big config's rebuild, until the test has asked
            await load(self, db, view=view, **kw)

        monkeypatch.setattr(Engine, "load", slow_view)
        client: Client = await aiohttp_client(create_app(load_config(path)))
        first = await client.get("/readyz")
        assert first.status == 200 and (await first.json())["role"] == "standby"
        hold.set()
        await asyncio.wait_for(held.wait(), 10)
        await asyncio.sleep(STALE + 0.5)  # inside the rebuild, past the stall
        resp = await client.get("/readyz")
        assert resp.status == 200, await resp.text()
        assert (await client.get(f"/ping/{new_key()}")).status == 404  # it answers pings meanwhile
        release.set()
    finally:
        leader.kill()


async def test_a_standby_whose_picture_of_the_states_cannot_be_rebuilt_says_so_on_readyz_and_once_in_the_log(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Marked alive by each lease read, a standby whose every rebuild of its view failed (or one that
    # never ended) answered 200 for ever, its dashboard, API and the checks it takes pings for as old
    # as its last picture, and the log said so at debug only.
    path = write(tmp_path, database, every("job", new_key(), "1h"))
    monkeypatch.setattr(viewage, "VIEW_STALE", STALE)
    caplog.set_level(logging.INFO, logger=viewage.__name__)
    leader = Server(path)
    await asyncio.to_thread(leader.start)
    try:
        async with aiohttp.ClientSession() as session:

            async def leads() -> bool:
                return bool((await readiness(session, leader))["role"] == "leader")

            await until(leads, 10, "the leader leads")
        broken, load = asyncio.Event(), Engine.load

        async def failing_view(self: Engine, db: Reader, *, view: bool = False, **kw: Any) -> None:
            if view and broken.is_set():
                raise StoreError("permission denied for table states")
            await load(self, db, view=view, **kw)

        monkeypatch.setattr(Engine, "load", failing_view)
        client: Client = await aiohttp_client(create_app(load_config(path)))
        first = await client.get("/readyz")
        assert first.status == 200 and (await first.json())["role"] == "standby"
        broken.set()

        async def unready() -> bool:
            resp = await client.get("/readyz")
            return resp.status == 503

        await until(unready, 30, "the standby says its picture is not rebuilt")
        body = await (await client.get("/readyz")).json()
        assert body["ready"] is False and body["role"] == "standby"
        assert "picture of the states has not been rebuilt" in body["problem"], body
        assert "permission denied for table states" in body["problem"], body

        async def logged() -> bool:  # at the next rebuild that fails, once its picture is stale
            return "has not been rebuilt" in caplog.text

        await until(logged, 30, "the log says the standby's picture is not rebuilt")
        broken.clear()

        async def ready() -> bool:
            resp = await client.get("/readyz")
            return resp.status == 200

        await until(ready, 30, "the standby is ready once its picture is rebuilt")
    finally:
        leader.kill()
    said = [r.getMessage() for r in caplog.records if r.name == viewage.__name__ and r.levelno >= logging.INFO]
    assert len(said) == 2 and "has not been rebuilt" in said[0] and "again" in said[1], said
