"""A storm: many checks down at once on a slow or dead channel, and what the operator sees and
does meanwhile.

Real sockets: an aiohttp webhook receiver, Heartfly on a real socket (or `heartfly serve` as a
subprocess) with a real SQLite file. The fixtures and helpers are those of tests/test_alerts.py.
"""

# ruff: noqa: F811 - the fixtures imported below are named again as test parameters, as pytest wants

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from heartfly.notify import dispatcher
from heartfly.web import app
from tests.conftest import ConfigWriter, new_key
from tests.proc import Server, heartfly
from tests.test_alerts import (
    SERVER,
    Hit,
    Receiver,
    Receivers,
    Start,
    check,
    post_test,
    receivers,  # noqa: F401 - a fixture (start's)
    reported,
    start,  # noqa: F401 - a fixture
    until,
    webhook,
)
from tests.test_cli_operate import _refused_hook


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


def test_status_says_how_many_alerts_wait_to_be_delivered_while_their_channel_refuses_them(tmp_path: Path) -> None:
    # A storm on a dead webhook: status showed the checks down and nothing of the alerts nobody had
    # got, as if they had been told (only /metrics and the log said so).
    path, key = _refused_hook(tmp_path)
    with Server(path) as server:
        with urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}/fail", data=b""), timeout=10):
            pass
        table = heartfly("status", "-c", str(path))
    assert table.returncode == 0, table.stderr
    assert "down (failed)" in table.stdout
    assert "1 alert(s) waiting to be delivered" in table.stdout, table.stdout
    listed = heartfly("status", "--json", "-c", str(path))
    assert [item["name"] for item in json.loads(listed.stdout)] == ["nightly"]  # --json stays the list


async def test_the_dashboard_says_how_many_alerts_wait_to_be_delivered_while_their_channel_refuses_them(
    start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # As heartfly status: the first page showed the checks down, and nothing of the alerts nobody had got.
    dead = await receivers(status=503)
    keys = [new_key() for _ in range(3)]
    body = webhook("dead", dead.url) + "".join(check(f"job{i}", key, ["dead"]) for i, key in enumerate(keys))
    hf = await start(write_config(body + '[alerts]\nexpire_after = "1h"\n', server=SERVER))
    page: Any = hf.client
    quiet = await (await page.get("/", headers=hf.auth)).text()
    assert "waiting to be delivered" not in quiet
    for key in keys:
        await hf.ping(key, "/fail")
    text = await (await page.get("/", headers=hf.auth)).text()
    assert "3 alerts waiting to be delivered" in text, text


async def test_a_webhook_answering_429_with_retry_after_gets_no_request_for_any_alert_until_then(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    # A storm to a rate-limited chat webhook: the alert answered 429 waited as asked, but the others
    # queued on the channel were sent at once, each answered 429 again (Discord bars an address
    # for a flood of them), every one a failed attempt and a warning in the log.
    answered: list[tuple[float, str]] = []

    async def limited(request: web.Request) -> web.Response:
        answered.append((time.monotonic(), request.headers["Idempotency-Key"]))
        if len(answered) == 1:  # as Slack and Discord say it: how many seconds to wait
            return web.Response(status=429, text="rate limited", headers={"Retry-After": "2"})
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", limited)
    url = str((await aiohttp_server(receiver)).make_url("/hook"))
    keys = [new_key() for _ in range(4)]
    alerts = '[alerts]\nconcurrency = 1\nretry_initial = "100ms"\nretry_max = "5s"\ntimeout = "1s"\n'
    body = webhook("hook", url) + "".join(check(f"job{i}", key, ["hook"]) for i, key in enumerate(keys))
    hf = await start(write_config(body + alerts))
    for key in keys:
        await hf.ping(key, "/fail")
    await until(lambda: len({key for _, key in answered}) == 4 and len(answered) == 5, "every alert, one twice", 15)
    first = answered[0][0]
    assert [at - first >= 2.0 for at, _ in answered[1:]] == [True] * 4, answered


async def test_history_says_an_alert_due_on_a_busy_channel_waits_its_turn_not_a_next_attempt_long_passed(
    monkeypatch: pytest.MonkeyPatch, start: Start, receivers: Receivers, write_config: ConfigWriter
) -> None:
    # A storm on a channel that takes one at a time: the alerts queued for a slot said "not tried
    # yet, next attempt" at a time already passed, as if the dispatcher were stuck.
    monkeypatch.setattr(app, "STOP_GRACE", 0.0)  # the hung request is cut off at the stop
    stuck = await receivers(hanging=True)
    keys = [new_key(), new_key()]
    body = webhook("stuck", stuck.url, 'timeout = "30s"') + "".join(
        check(f"job{i}", key, ["stuck"]) for i, key in enumerate(keys)
    )
    config = write_config(body + "[alerts]\nconcurrency = 1\n", server=SERVER)
    hf = await start(config)
    for key in keys:
        await hf.ping(key, "/fail")
    await until(lambda: stuck.hits, "the first down alert's request")
    for name in ("job0", "job1"):
        told = await asyncio.to_thread(heartfly, "history", name, "-c", str(config.path))
        assert told.returncode == 0, told.stderr
        assert "down via stuck: pending after 0 attempt(s)" in told.stdout, told.stdout
        assert "next attempt" not in told.stdout
        assert re.search(r"pending: due since \S+ \S+Z: under way, or waiting its turn on channel stuck", told.stdout)


async def test_an_alert_expiring_while_its_channel_waits_out_a_retry_after_is_tried_before_it_expires(
    monkeypatch: pytest.MonkeyPatch, start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    # A 429 asking for 30 s held every attempt on the channel that long, past the expiry of the
    # alerts queued there (and of the one answered, whose own retry comes a second before its
    # expiry): they were given up untried, "expired before it could be sent".
    # Their last try comes 4 s before the expiry here, not 1: an attempt begun more than a second
    # late (an outbox read slowed by a loaded machine) found it expired, and the test failed.
    monkeypatch.setattr(dispatcher, "LAST_TRY", 4.0)
    answered: list[tuple[int, str]] = []

    async def limited(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        if not answered:
            answered.append((429, key))
            return web.Response(status=429, text="rate limited", headers={"Retry-After": "30"})
        answered.append((200, key))
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", limited)
    url = str((await aiohttp_server(receiver)).make_url("/hook"))
    keys = [new_key() for _ in range(2)]
    alerts = '[alerts]\nconcurrency = 1\nretry_initial = "100ms"\nretry_max = "60s"\nexpire_after = "6s"\n'
    body = webhook("hook", url) + "".join(check(f"job{i}", key, ["hook"]) for i, key in enumerate(keys))
    hf = await start(write_config(body + alerts))
    for key in keys:
        await hf.ping(key, "/fail")
    await until(lambda: len({key for status, key in answered if status == 200}) == 2, "both alerts, in time", 15)


def test_history_of_an_alert_due_while_the_server_is_stopped_says_so_not_that_it_is_under_way(tmp_path: Path) -> None:
    # Read from the database, history works with the server down: an alert due then said "under
    # way, or waiting its turn on channel hook", of a dispatcher that was not running at all.
    path, key = _refused_hook(tmp_path)
    path.write_text(path.read_text() + '[alerts]\nretry_initial = "100ms"\nretry_max = "200ms"\n')
    with Server(path) as server:
        with urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}/fail", data=b""), timeout=10):
            pass
        deadline = time.monotonic() + 15
        while "last error:" not in heartfly("history", "nightly", "-c", str(path)).stdout:
            assert time.monotonic() < deadline, "no attempt recorded"
            time.sleep(0.2)
        assert server.stop() == 0, server.log()  # a clean stop (systemctl stop)
    time.sleep(0.5)  # its next attempt (200 ms at most after the last) is due by now
    told = heartfly("history", "nightly", "-c", str(path))
    assert told.returncode == 0, told.stderr
    assert "down via hook: pending" in told.stdout, told.stdout
    assert "under way" not in told.stdout, told.stdout
    assert "the server is not running" in told.stdout, told.stdout


async def test_a_test_alert_under_way_takes_no_slot_of_the_channels_alerts(
    start: Start, aiohttp_server: AiohttpServer, write_config: ConfigWriter
) -> None:
    # A test alert goes beside the channel's attempts, not in one of their slots: on a channel that
    # takes one at a time, a test left unanswered held every down alert back for its whole time
    # limit (and a second test beside it took the one slot left, so tests kept the alerts out).
    answered: list[str] = []
    release = asyncio.Event()

    async def slow_tests(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        answered.append(key)
        if key.startswith("test-"):
            await release.wait()
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", slow_tests)
    url = str((await aiohttp_server(receiver)).make_url("/hook"))
    keys = [new_key() for _ in range(2)]
    body = webhook("hook", url, 'timeout = "30s"') + "".join(check(f"job{i}", k, ["hook"]) for i, k in enumerate(keys))
    hf = await start(write_config(body + "[alerts]\nconcurrency = 1\n", server=SERVER))
    tested = asyncio.ensure_future(post_test(hf, "hook"))
    try:
        await until(lambda: answered, "the test alert's request")
        for key in keys:
            await hf.ping(key, "/fail")
        await until(lambda: len([k for k in answered if k.startswith("flip-")]) == 2, "both down alerts", 10)
    finally:
        release.set()
        status, result = await tested
    assert status == 200 and reported(result) == "sent", result


def test_status_of_a_file_mid_edit_says_how_many_alerts_wait_to_be_delivered_too(tmp_path: Path) -> None:
    # With a check half edited (muting a dead channel during a storm, say), status asks the running
    # server for its checks: the alerts nobody had got went unsaid again, as if they had been told.
    path, key = _refused_hook(tmp_path)
    with Server(path) as server:
        path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{server.url.rsplit(':', 1)[1]}"))
        with urllib.request.urlopen(urllib.request.Request(f"{server.url}/ping/{key}/fail", data=b""), timeout=10):
            pass
        path.write_text(path.read_text() + '[checks.half-done]\nkey = "short"\nevery = "1h"\n')
        table = heartfly("status", "-c", str(path))
    assert table.returncode == 0, table.stderr
    assert "down (failed)" in table.stdout, table.stdout
    assert "1 alert(s) waiting to be delivered" in table.stdout, table.stdout
