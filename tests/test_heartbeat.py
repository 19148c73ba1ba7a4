"""`[server] heartbeat_url`: Heartfly pings another monitor while it is healthy, and never logs the
URL's path (the other monitor's key)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from heartfly.core.config import Config
from heartfly.server import heartbeat
from heartfly.server.engine import Engine
from tests.conftest import ConfigWriter, new_key, problems
from tests.proc import Server


async def test_a_running_server_pings_its_heartbeat_url_every_heartbeat_every(
    tmp_path: Path, aiohttp_server: AiohttpServer
) -> None:
    hits: list[tuple[float, str]] = []

    async def beat(request: web.Request) -> web.Response:
        hits.append((time.monotonic(), request.path))
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/{key}", beat)
    receiver = await aiohttp_server(app)
    secret = new_key()
    config = tmp_path / "heartfly.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "heartfly.db"\n'
        f'heartbeat_url = "{receiver.make_url("/" + secret)}"\nheartbeat_every = "1s"\n'
        f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    server = Server(config)
    await asyncio.to_thread(server.start)
    try:
        for _ in range(100):
            if len(hits) >= 3:
                break
            await asyncio.sleep(0.1)
        assert len(hits) >= 3, server.log()
        assert {path for _, path in hits} == {f"/{secret}"}
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(hits)]
        assert all(gap > 0.5 for gap in gaps), gaps  # paced by heartbeat_every, not sent in a burst
        await receiver.close()  # the other monitor goes away: said once, without the key
        await asyncio.sleep(2.5)
        assert await asyncio.to_thread(server.stop) == 0
    finally:
        server.kill()
    log = server.log()
    assert log.count("the heartbeat to") == 1, log
    assert secret not in log


async def test_a_reload_that_shortens_heartbeat_every_applies_without_waiting_out_the_old_one(
    tmp_path: Path, aiohttp_server: AiohttpServer
) -> None:
    # The other monitor is set to the new, shorter period: a heartbeat held back for the old one
    # (an hour here) would be a false alarm there.
    hits: list[str] = []

    async def beat(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/{key}", beat)
    receiver = await aiohttp_server(app)
    config = tmp_path / "heartfly.toml"
    text = (
        f'[server]\nlisten = "127.0.0.1:0"\ndatabase = "heartfly.db"\n'
        f'heartbeat_url = "{receiver.make_url("/beat")}"\nheartbeat_every = "1h"\n'
        f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    config.write_text(text)
    server = Server(config)
    await asyncio.to_thread(server.start)
    try:
        for _ in range(100):
            if hits:
                break
            await asyncio.sleep(0.1)
        assert hits == ["/beat"], server.log()  # the first, at the start
        config.write_text(text.replace('heartbeat_every = "1h"', 'heartbeat_every = "1s"'))
        server.signal(signal.SIGHUP)
        assert await asyncio.to_thread(server.wait_for_log, "reloaded")
        for _ in range(150):
            if len(hits) >= 3:
                break
            await asyncio.sleep(0.1)
        assert len(hits) >= 3, server.log()
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ('heartbeat_url = "ftp://example.com/x"', "server.heartbeat_url"),
        ('heartbeat_every = "1m"', "server.heartbeat_every"),
        ('heartbeat_url = "https://example.com/k"\nheartbeat_every = "0s"', "server.heartbeat_every"),
    ],
)
def test_a_bad_heartbeat_setting_is_named(write_config: ConfigWriter, server: str, problem: str) -> None:
    found = problems(write_config, "", server=server)
    assert any(p.startswith(problem) for p in found), found


@pytest.mark.parametrize(
    "url",
    [
        "https://hc-ping.example.com:99999/SECRET",  # no port there can be: every heartbeat failed, "a proxy"
        "https://[::1/SECRET",  # a broken address: the first failure's log line killed the heartbeat task
        "https://user:pass/SECRET@hc-ping.example.com/x",  # a "/" in a password: urlsplit reads the port "pass"
    ],
)
def test_a_heartbeat_url_no_client_can_use_is_refused_without_repeating_it(
    write_config: ConfigWriter, url: str
) -> None:
    found = problems(write_config, "", server=f'heartbeat_url = "{url}"\nheartbeat_every = "1m"')
    assert any(p.startswith("server.heartbeat_url: expected an http(s) URL") for p in found), found
    assert not any("SECRET" in p for p in found), found


async def test_a_slow_answer_does_not_push_the_next_heartbeat_later_than_heartbeat_every_after_it_was_sent(
    write_config: ConfigWriter, aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait for the next heartbeat counted from the answer: a receiver slow to answer (up to
    # the 10 s time limit) made the period heartbeat_every plus that, and the other monitor, set to
    # heartbeat_every, would call Heartfly down. It counts from when the heartbeat was sent.
    arrived: list[float] = []

    async def beat(request: web.Request) -> web.Response:
        arrived.append(time.monotonic())
        await asyncio.sleep(0.3)  # a slow answer
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/{key}", beat)
    receiver = await aiohttp_server(app)
    config = write_config("", server=f'heartbeat_url = "{receiver.make_url("/beat")}"\nheartbeat_every = "1s"')
    counted_from: list[float] = []
    waiting = asyncio.Event()

    async def wait(config: Callable[[], Config], url: str, since: float) -> None:
        counted_from.append(since)
        waiting.set()
        await asyncio.Event().wait()  # no second heartbeat: the first one's wait is what is looked at

    monkeypatch.setattr(heartbeat, "_wait", wait)
    monkeypatch.setattr(heartbeat, "problem", lambda engine: None)  # a healthy engine
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(heartbeat.run(lambda: config, lambda: cast(Engine, None), session))
        try:
            await asyncio.wait_for(waiting.wait(), 30)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert len(arrived) == 1
    assert counted_from[0] <= arrived[0]


async def test_a_heartbeat_held_back_while_unhealthy_is_sent_once_healthy_not_a_whole_period_later(
    write_config: ConfigWriter, aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unhealthy at the moment a heartbeat was due (a second's blip of failing writes), Heartfly
    # sent none and waited a whole heartbeat_every for the next: an hour's period made a two-hour
    # gap, and the other monitor, set to that hour, called Heartfly down for the blip.
    arrived = asyncio.Event()

    async def beat(request: web.Request) -> web.Response:
        arrived.set()
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/{key}", beat)
    receiver = await aiohttp_server(app)
    config = write_config("", server=f'heartbeat_url = "{receiver.make_url("/beat")}"\nheartbeat_every = "1h"')
    asked: list[str | None] = []

    def blip(engine: Engine) -> str | None:  # unhealthy at the first look only
        asked.append("database writes are failing" if not asked else None)
        return asked[-1]

    monkeypatch.setattr(heartbeat, "problem", blip)
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(heartbeat.run(lambda: config, lambda: cast(Engine, None), session))
        try:
            await asyncio.wait_for(arrived.wait(), 30)  # not the hour of heartbeat_every
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert asked[0] is not None and len(asked) >= 2


async def test_a_heartbeat_answered_200_with_an_endless_body_is_taken_without_reading_it_all(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole answer was read into memory: a monitor (or a proxy's error page) streaming a body
    # without end was read for the 10 s time limit, as much as it sent, and the heartbeat it had
    # taken (200) was logged as failed, "no answer within 10 s".
    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(chunk)
        return resp

    app = web.Application()
    app.router.add_get("/{key}", endless)
    receiver = await aiohttp_server(app)
    monkeypatch.setattr(heartbeat, "TIMEOUT", 3.0)
    async with aiohttp.ClientSession() as session:
        why = await heartbeat._send(str(receiver.make_url("/beat")), session)
    assert why is None


async def test_a_heartbeat_held_back_says_why_once_per_problem_not_at_each_look(
    write_config: ConfigWriter,
    aiohttp_server: AiohttpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Looked at again every second while held back, the heartbeat logged "no heartbeat sent" again
    # at each look whose words had changed, and a stuck commit's or a held inbox's name the seconds
    # they have waited: a line a second for as long as the trouble lasts.
    arrived = asyncio.Event()

    async def beat(request: web.Request) -> web.Response:
        arrived.set()
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/{key}", beat)
    receiver = await aiohttp_server(app)
    config = write_config("", server=f'heartbeat_url = "{receiver.make_url("/beat")}"\nheartbeat_every = "1h"')
    troubles = iter(
        [*(f"a database commit has waited {s} s for an answer" for s in range(5, 12)), "database writes are failing"]
    )
    monkeypatch.setattr(heartbeat, "problem", lambda engine: next(troubles, None))
    monkeypatch.setattr(heartbeat, "RECHECK", 0.01)
    caplog.set_level(logging.DEBUG, logger=heartbeat.__name__)
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(heartbeat.run(lambda: config, lambda: cast(Engine, None), session))
        try:
            await asyncio.wait_for(arrived.wait(), 30)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("no heartbeat sent")]
    assert said == [
        "no heartbeat sent: a database commit has waited 5 s for an answer",
        "no heartbeat sent: database writes are failing",
    ]


async def test_a_heartbeat_answered_200_whose_body_then_stalls_is_taken_by_its_status(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The status decides, but the body was still waited for: a monitor (or a proxy) that sent its
    # 200 and then nothing more had the heartbeat it took logged as failed, "no answer within 10 s".
    release = asyncio.Event()

    async def stalled(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 2
        await resp.prepare(request)  # the status and headers, then nothing until the test ends
        await release.wait()
        return resp

    app = web.Application()
    app.router.add_get("/{key}", stalled)
    receiver = await aiohttp_server(app)
    monkeypatch.setattr(heartbeat, "TIMEOUT", 3.0)
    try:
        async with aiohttp.ClientSession() as session:
            why = await heartbeat._send(str(receiver.make_url("/beat")), session)
    finally:
        release.set()
    assert why is None
