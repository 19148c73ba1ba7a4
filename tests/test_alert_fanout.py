"""Many checks going down at once: every alert is delivered, and none twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

from heartfly.web.app import create_app
from tests.conftest import ConfigWriter, new_key


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
