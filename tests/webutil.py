"""Helpers for the dashboard, API, metrics and badge tests."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from yarl import URL

from heartfly.core.config import Config

Client = TestClient[web.Request, web.Application]


def token_of(config: Config) -> str:
    assert config.server.api_token_file is not None
    return Path(config.server.api_token_file).read_text().strip()


def bearer(config: Config) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(config)}"}


async def login(client: Client, config: Config) -> str:
    """Signs the client in through the form; returns the CSRF token its pages carry."""
    resp = await client.post("/login", data={"token": token_of(config), "next": "/"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await (await client.get("/")).text()
    return csrf_in(page)


def went_to(resp: ClientResponse) -> str:
    """Where a redirect leads, as a path and query: its Location is relative to the page (web.paths)."""
    return resp.url.join(URL(resp.headers["Location"])).path_qs


def csrf_in(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Polls `condition` every 20 ms until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def state_of(client: Client, config: Config, name: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/checks/{name}", headers=bearer(config))
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def raw_request(client: Client, head: bytes, body: bytes = b"") -> int:
    """Send bytes no HTTP client library would (header values that are not UTF-8); the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(head + b"\r\nHost: x\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode())
        writer.write(b"\r\n\r\n" + body)
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
    return int(line.split()[1])
