"""A storm: many checks down at once on a slow channel, and what the operator does meanwhile.

Real sockets: an aiohttp webhook receiver, Heartfly on a real socket with a real SQLite file. The
fixtures and helpers are those of tests/test_alerts.py.
"""

# ruff: noqa: F811 - the fixtures imported below are named again as test parameters, as pytest wants

from __future__ import annotations

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from heartfly.web import app
from tests.conftest import ConfigWriter, new_key
from tests.test_alerts import (
    SERVER,
    Hit,
    Receiver,
    Start,
    check,
    post_test,
    receivers,  # noqa: F401 - a fixture (start's)
    reported,
    start,  # noqa: F401 - a fixture
    until,
    webhook,
)


class SlowForAlerts(Receiver):
    """A receiver that leaves every alert unanswered (until released) but answers a test at once,
    as a webhook fixed after an outage does once its backlog is no longer what it is asked."""

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers["Idempotency-Key"].startswith("test-"):
            self.hits.append(Hit(request.path, request.headers.copy(), await request.read()))
            return web.Response(text="thanks")
        return await super().handle(request)


async def test_a_channel_test_during_a_storm_is_tried_at_once_ahead_of_the_channels_backlog(
    monkeypatch: pytest.MonkeyPatch, start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    # 120 down alerts wait on a channel that takes one at a time, each cut off after 1 s: behind
    # them (more than a read takes of a channel, and a slot each), the operator's test alert was
    # neither read nor tried within the 6 s the API waits, which said "pending" of a channel that works.
    monkeypatch.setattr(app, "STOP_GRACE", 0.0)  # the hung requests are cut off at the stop
    slow = SlowForAlerts(hanging=True)
    url = str((await aiohttp_server(slow.app())).make_url("/hook"))
    keys = [new_key() for _ in range(120)]
    alerts = '[alerts]\nconcurrency = 1\ntimeout = "1s"\nexpire_after = "60s"\n'
    body = webhook("hook", url) + "".join(check(f"job{i}", key, ["hook"]) for i, key in enumerate(keys))
    hf = await start(write_config(body + alerts, server=SERVER))
    for key in keys:
        await hf.ping(key, "/fail")
    await until(lambda: slow.hits, "the first down alert's request")
    status, result = await post_test(hf, "hook")
    assert status == 200
    slow.release.set()
    assert reported(result) == "sent", result
