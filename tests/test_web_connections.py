"""Clients that misbehave on the wire: gone mid-body, slow, idle. Served the way `heartfly serve`
serves (aiohttp's test server cancels handlers on disconnect and has its own timeouts, so it
would hide all of this): the server answers what it can, logs at most a quiet line, keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from heartfly.core.config import Config
from heartfly.server import daemon as server
from heartfly.server.engine import Engine
from heartfly.web import api, pings
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME, Runtime
from tests.conftest import ConfigWriter, new_key
from tests.webutil import bearer, until

KEY = new_key()


@pytest.fixture
def config(write_config: ConfigWriter) -> Config:
    return write_config(f'[checks.job]\nkey = "{KEY}"\nevery = "1h"\n')


@pytest.fixture
async def port(config: Config, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    """`heartfly serve`'s own start-up (server._run) in this event loop; the port it bound. Idle
    connections are closed after 0.3 s here (75 s in service), so that a test can see it happen."""
    monkeypatch.setattr(server, "IDLE_TIMEOUT", 0.3)
    app = create_app(config)
    stop = asyncio.Event()
    task = asyncio.create_task(server._run(app, stop, asyncio.Queue()))

    async def listening() -> bool:
        assert not task.done(), task
        return bool(app[RUNTIME].listening)

    await until(listening)
    match = re.search(r":(\d+)$", app[RUNTIME].listening)
    assert match
    yield int(match.group(1))
    stop.set()
    await asyncio.wait_for(task, 10)


async def ping_status(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/ping/{KEY}") as resp:
        return resp.status


async def _connect(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


def _post(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("path", [f"/ping/{KEY}", f"/api/v1/heartbeat/{KEY}", "/login", "/checks/job/pause"])
async def test_a_client_that_hangs_up_mid_body_is_one_quiet_line_without_the_key(
    port: int, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    _, writer = await _connect(port, _post(path, 100) + b"token")
    await asyncio.sleep(0.05)  # the handler is waiting for the rest of the body now
    writer.close()

    async def handled() -> bool:
        return any("went away" in r.getMessage() or r.levelno >= logging.ERROR for r in caplog.records)

    await until(handled)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert len([r for r in caplog.records if "went away" in r.getMessage()]) == 1
    assert KEY not in caplog.text  # ping keys are secrets
    assert await ping_status(port) == 200


@pytest.mark.parametrize("path", [f"/ping/{KEY}", f"/api/v1/heartbeat/{KEY}", "/login", "/checks/job/pause"])
async def test_a_body_that_does_not_arrive_in_time_is_cut_off_with_a_408(
    port: int, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setattr(pings, "BODY_TIMEOUT", 0.2)
    reader, writer = await _connect(port, _post(path, 100) + b"token")  # 95 bytes never follow
    try:
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.split()[1] == b"408"
        assert b"the body took longer than 0.2 s" in await asyncio.wait_for(reader.readuntil(b" s\n"), 5)
    finally:
        writer.close()
    assert await ping_status(port) == 200


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""  # EOF
    except ConnectionResetError:
        return True


async def test_idle_and_half_sent_connections_are_closed_and_pings_still_get_through(port: int) -> None:
    idle = [await _connect(port, b"") for _ in range(20)]
    partial = [await _connect(port, b"GET / HTTP/1.1\r\nHost: x\r\n") for _ in range(20)]
    dribbling = [await _connect(port, b"GET / HTTP/1.1\r\n") for _ in range(10)]

    async def dribble() -> None:  # one header line every 0.1 s, never the blank line
        with contextlib.suppress(ConnectionError):
            for i in range(100):
                for _, writer in dribbling:
                    writer.write(f"X-Slow-{i}: 1\r\n".encode())
                await asyncio.sleep(0.1)

    task = asyncio.create_task(dribble())
    try:
        assert await ping_status(port) == 200
        held = idle + partial + dribbling
        closed = await asyncio.gather(*(_closed_by_server(reader) for reader, _ in held))
        assert all(closed), f"{closed.count(False)} of {len(held)} connections still open"
    finally:
        task.cancel()
        for _, writer in idle + partial + dribbling:
            writer.close()
    assert await ping_status(port) == 200


async def test_a_client_that_stops_reading_a_large_page_is_cut_off_quietly(
    port: int, config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(api, "STALLED", 0.2)
    body = b"\x01" * config.server.body_limit  # 200 of them: a page of 120 MB of JSON
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.post(f"http://127.0.0.1:{port}/ping/{KEY}/log", data=body) as resp:
                assert resp.status == 200
    auth = "".join(f"{k}: {v}\r\n" for k, v in bearer(config).items())
    request = f"GET /api/v1/checks/job/pings?limit=200 HTTP/1.1\r\nHost: x\r\n{auth}\r\n"
    reader, writer = await _connect(port, request.encode())
    received = 0
    try:
        await asyncio.sleep(1)  # reading nothing: the socket's buffers fill, the server's writes wait
        with contextlib.suppress(ConnectionResetError):
            while chunk := await asyncio.wait_for(reader.read(1 << 20), 5):
                received += len(chunk)
    finally:
        writer.close()
    assert 0 < received < 100_000_000  # closed, with most of the page never sent
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert await ping_status(port) == 200


@pytest.mark.parametrize("path", ["/livez", f"/ping/{KEY}", "/api/v1/reload", "/nowhere"])
async def test_a_compressed_body_left_unread_is_answered_and_the_connection_closed_not_inflated(
    port: int, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    # aiohttp drained an unread body after the answer, inflating it without yielding to the event
    # loop: 2 MB of gzip, 2 GB of zeros, seconds without a ping answered. Half of this one is sent.
    bomb = gzip.compress(bytes(50_000_000), 9)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    reader, writer = await _connect(port, head.encode() + bomb[: len(bomb) // 2])
    try:
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.split()[1] in (b"401", b"404", b"405", b"413")
        with contextlib.suppress(ConnectionResetError):  # the answer, then the end: no wait for the rest
            await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert await ping_status(port) == 200


@pytest.mark.parametrize("path", ["/api/v1/checks", "/api/v1/checks/job/pings"])
async def test_a_client_gone_before_a_streamed_list_begins_is_no_logged_error(
    port: int, config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    # 100k checks take seconds to sum up, a page waits for the writer: a client may give up meanwhile.
    # The answer's headers then go to a closed connection: a debug line, as for a json_response.
    settled = Runtime.settled

    async def slowly(self: Runtime) -> None:
        await asyncio.sleep(0.3)  # the client hangs up here
        await settled(self)

    async def all_read_slowly(self: Engine) -> None:
        await asyncio.sleep(0.3)

    monkeypatch.setattr(Runtime, "settled", slowly)
    monkeypatch.setattr(Engine, "all_read", all_read_slowly)
    auth = "".join(f"{k}: {v}\r\n" for k, v in bearer(config).items())
    _, writer = await _connect(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
    await asyncio.sleep(0.05)
    writer.close()
    await asyncio.sleep(0.6)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert await ping_status(port) == 200


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_static_file_asked_with_an_unread_compressed_body_is_sent_once_without_a_logged_error(
    port: int, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    # The answer the middleware sends itself is handed back to aiohttp, which prepares it again: a
    # file's answer sends the file each time, and the second found the connection closed (an
    # AssertionError logged as "Unhandled exception", from anyone who can reach the port).
    body = gzip.compress(b"x" * 1000)
    head = f"{method} /static/favicon.svg HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    reader, writer = await _connect(port, head.encode() + body[:10])
    try:
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := await asyncio.wait_for(reader.read(1 << 16), 5):
                answer += chunk
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.count(b"HTTP/1.1") == 1 and (method == "HEAD") == answer.endswith(b"\r\n\r\n")
    assert await ping_status(port) == 200
    await asyncio.sleep(0.2)  # aiohttp's own turn with the answer comes after the connection is closed
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize("path", [f"/ping/{KEY}", f"/api/v1/heartbeat/{KEY}", "/api/v1/checks/job/record"])
async def test_a_client_that_hangs_up_with_a_compressed_body_unread_is_no_logged_error(
    port: int, config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    # A cron job's curl killed while it sends its gzipped output, or a client that gives up on a
    # slow answer: the answer the middleware sends itself goes to a closed connection, which is a
    # debug line at most, as aiohttp's own sending of it was (not 'Error handling request').
    caplog.set_level(logging.DEBUG)
    settled = Runtime.settled

    async def slowly(self: Runtime) -> None:
        await asyncio.sleep(0.3)  # the client hangs up here
        await settled(self)

    monkeypatch.setattr(Runtime, "settled", slowly)
    body = gzip.compress(bytes(100_000))
    auth = "".join(f"{k}: {v}\r\n" for k, v in bearer(config).items())
    method = "GET" if path.startswith("/api/v1/checks") else "POST"
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
    _, writer = await _connect(port, head.encode() + body[:20])
    await asyncio.sleep(0.05)
    writer.close()
    await asyncio.sleep(0.6)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert KEY not in caplog.text  # ping keys are secrets
    assert await ping_status(port) == 200


async def test_a_gzip_body_of_many_tiny_members_is_refused_without_holding_up_other_pings(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Anyone who can reach the port: gzip members may follow one another, and 20,000 of 26 bytes
    # each were inflated one by one into a growing copy of all before them: 15 s in which no ping
    # was answered.
    body = gzip.compress(bytes(500), 9) * 20_000
    head = f"POST /ping/{KEY}/log HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
    reader, writer = await _connect(port, head.encode() + body)
    try:
        started = asyncio.get_running_loop().time()
        assert await ping_status(port) == 200
        assert asyncio.get_running_loop().time() - started < 1.0
        with contextlib.suppress(ConnectionResetError):  # refused with most of it unsent: the end
            await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    # A few members (`cat a.gz b.gz`) are one body; more than aiohttp took are refused with why.
    async with aiohttp.ClientSession() as session:
        for members, status in ((1024, 200), (1025, 400)):
            gzipped = gzip.compress(b"x", 9) * members
            url = f"http://127.0.0.1:{port}/ping/{KEY}/log"
            async with session.post(url, data=gzipped, headers={"Content-Encoding": "gzip"}) as resp:
                assert resp.status == status
                if status == 400:
                    assert await resp.text() == "cannot read the body: more than 1024 gzip members\n"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
