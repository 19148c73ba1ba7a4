"""Many checks going down at once: every alert is delivered, and none twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

from heartfly.server import engine as engine_module
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query


async def test_two_hundred_simultaneous_down_alerts_each_arrive_exactly_once(
    aiohttp_server: Any, aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    seen: Counter[str] = Counter()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        seen[request.headers["Idempotency-Key"]] += 1
        await asyncio.sleep(0.01)  # a receiver that takes a moment widens the race this guards against
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = await aiohttp_server(receiver)
    checks = "".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "1s"\ngrace = "0s"\n' for i in range(200))
    config = write_config(
        '[defaults]\nchannels = ["hook"]\n[alerts]\nconcurrency = 16\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{server.make_url("/hook")}"\n' + checks
    )
    await aiohttp_client(create_app(config))
    for _ in range(200):
        if len(seen) == 200:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # time for a duplicate to show up
    assert len(seen) == 200
    assert [key for key, n in seen.items() if n > 1] == []


async def test_a_storm_of_deadlines_is_judged_a_part_at_a_time_each_committed_before_the_next(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10,000 checks due at one instant were judged in one go, and their rows queued for the writer
    # all at once: a ping that came meanwhile was committed after all of them, answered 5.8 s late.
    monkeypatch.setattr(engine_module, "FIRE_AT_ONCE", 50, raising=False)
    checks = "".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "1s"\ngrace = "0s"\n' for i in range(200))
    config = write_config('[defaults]\nchannels = ["journal"]\n[channels.journal]\ntype = "log"\n' + checks)
    client = await aiohttp_client(create_app(config))
    engine = client.app[RUNTIME].engine
    fire_due = engine.fire_due
    parts: list[tuple[int, int]] = []  # at each part: the checks judged down, and the downs committed

    def down() -> int:
        return sum(c.state.status == "down" for c in engine.checks.values())

    def counted(now: float, most: int | None = None) -> int:
        parts.append((down(), query(config, "SELECT count(*) FROM flips WHERE new = 'down'")[0][0]))
        return int(fire_due(now, most) if most is not None else fire_due(now))

    monkeypatch.setattr(engine, "fire_due", counted)
    for _ in range(200):
        if down() == 200:
            break
        await asyncio.sleep(0.05)
    assert down() == 200
    judging = [part for part in parts if 0 < part[0] < 200]
    assert len(judging) >= 3  # 50 at a time, not 200 at once
    assert all(judged == committed for judged, committed in judging)
