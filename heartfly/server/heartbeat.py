"""`[server] heartbeat_url`: while healthy, Heartfly pings another monitor every `heartbeat_every`,
so an outage of Heartfly itself (the machine, the process, a whole cluster) is noticed elsewhere.

In a cluster the leader sends them: it alone fires deadlines and sends alerts, so its heartbeat
says that monitoring as a whole works; when no node leads, none is sent. The URL holds the other
monitor's key: it is never logged, only its host.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from heartfly.core.config import Config
from heartfly.core.units import human_duration
from heartfly.notify.proxy import proxy_for
from heartfly.server.engine import Engine
from heartfly.store.api import WriteQueue

log = logging.getLogger(__name__)

TIMEOUT = 10.0
IDLE = 5.0  # no heartbeat_url: look at the config again after this long
# Unhealthy when a heartbeat was due: look again after this long, and send it as soon as healthy.
RECHECK = 1.0


def shown(url: str) -> str:
    """The URL as logs show it: scheme and host, not the path (the other monitor's key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


async def run(
    config: Callable[[], Config],
    engine: Callable[[], Engine],
    session: aiohttp.ClientSession,
    leads: Callable[[], bool] = lambda: True,
) -> None:
    """Ping [server] heartbeat_url every heartbeat_every seconds while the engine is healthy,
    until cancelled; the config is read each round, so a reload applies. A failed heartbeat is
    logged once per spell (the other monitor will say the rest). One held back while unhealthy
    is sent as soon as the node is healthy again (RECHECK), not a whole heartbeat_every later: a
    blip of a second at the wrong moment would leave the other monitor a gap of two periods."""
    failing: str | None = None
    held: str | None = None  # why the heartbeat due is held back (its _kind), if it is
    while True:
        server = config().server
        url = server.heartbeat_url
        if url is None:
            await asyncio.sleep(IDLE)
            continue
        since = time.monotonic()  # the next is due heartbeat_every after this one is sent, however slow its answer
        trouble = problem(engine()) if leads() else "this node does not lead now"
        if trouble is not None:
            kind = _kind(trouble)
            if kind != held:  # once per problem: a stuck commit's words count its seconds
                log.debug("no heartbeat sent: %s", trouble)
            held = kind
            await asyncio.sleep(min(RECHECK, server.heartbeat_every))
            continue
        held = None
        why = await _send(url, session)
        if why is not None and failing is None:
            log.warning("the heartbeat to %s failed (%s); trying again every %s", shown(url), why,
                        human_duration(server.heartbeat_every))  # fmt: skip
        elif why is None and failing is not None:
            log.info("the heartbeat to %s works again", shown(url))
        failing = why
        await _wait(config, url, since)


def _kind(trouble: str) -> str:
    """A problem's words without its numbers (how long it has lasted): the same problem a second later."""
    return re.sub(r"\d+", "#", trouble)


async def _wait(config: Callable[[], Config], url: str, since: float) -> None:
    """Until heartbeat_every after `since`, as the config says now: a reload that shortens it or
    changes the URL applies within IDLE, not after the old period (a false alarm for a monitor
    set to the new one)."""
    while (server := config().server).heartbeat_url == url:
        left = since + server.heartbeat_every - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, IDLE))


WRITES_FAIL = "database writes are failing"
COMMIT_WAITS = "a database commit has waited"  # and how long


def problem(engine: Engine, writer: WriteQueue | None = None) -> str | None:
    """Why this node is not healthy, or None: the heartbeat's test and /readyz's. `writer`: the one
    pings go to, where it is not the engine's (a cluster standby's inbox)."""
    writer = engine.writer if writer is None else writer
    if writer.failing:
        return WRITES_FAIL
    if (stuck := writer.stuck()) is not None:
        return f"{COMMIT_WAITS} {stuck:.0f} s for an answer"
    if engine.timer_alive.stale() is not None:
        return "the deadline timer is not running"
    if (held := engine.held_back()) is not None:
        return held_words(held)
    return None


def held_words(held: float) -> str:
    return f"deadlines due for {held:.0f} s cannot fire: the inbox cannot be applied"


async def _send(url: str, session: aiohttp.ClientSession) -> str | None:
    """None if the heartbeat was taken, else why not."""
    try:
        via = proxy_for(url)  # HTTP(S)_PROXY, NO_PROXY
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=TIMEOUT), allow_redirects=False, **via) as resp:
            # The status decides: the body is not read, nor waited for (a long, endless or stalled
            # one: a proxy's page). A connection left with some of it unread is closed, not reused.
            return None if resp.status < 300 else f"HTTP {resp.status}"
    except TimeoutError:
        return f"no answer within {TIMEOUT:g} s"
    except aiohttp.ClientConnectionError as exc:  # says the host, never the path
        return str(exc) or type(exc).__name__
    except aiohttp.InvalidURL:  # the url is checked when the config is read: the proxy's (its text may hold a password)
        return "a proxy that cannot be used: HTTP_PROXY / HTTPS_PROXY"
    except aiohttp.ClientError as exc:
        return type(exc).__name__
