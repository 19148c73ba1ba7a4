"""`heartfly serve`: start the app, handle signals (SIGHUP reloads), stop within a bound."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from heartfly import systemd
from heartfly.config import ConfigError, load_config
from heartfly.store import StoreError
from heartfly.web.api import TIMER_STALE
from heartfly.web.app import create_app, reload
from heartfly.web.runtime import RUNTIME

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 5.0


class StartError(Exception):
    """Start-up failed for a reason the operator can fix; the message says which."""


async def serve(config_path: Path) -> None:
    config = load_config(config_path)
    app = create_app(config)
    # Handlers go in first: a SIGHUP or SIGTERM during start-up must not kill the process.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: asyncio.Queue[None] = asyncio.Queue()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, None)
    try:
        await _run(app, config_path, stop, reloads)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _run(app: web.Application, config_path: Path, stop: asyncio.Event, reloads: asyncio.Queue[None]) -> None:
    config = app[RUNTIME].config
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        await runner.setup()
    except (StoreError, OSError, ValueError) as exc:
        raise StartError(str(exc)) from None
    try:
        site = web.TCPSite(runner, config.server.host, config.server.port, backlog=2048)
        try:
            await site.start()
        except OSError as exc:
            why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise StartError(f"cannot listen on {config.server.host}:{config.server.port}: {why}") from None
        where = []
        for address in runner.addresses:
            host, port = address[0], address[1]
            shown = f"[{host}]" if ":" in host else host
            where.append(f"http://{shown}:{port}")
            log.info("Heartfly listening on http://%s:%d with %d checks", shown, port, len(config.checks))
        # systemd: ready only now, with the database open and the port bound.
        listening = f"listening on {' '.join(where)}"
        systemd.ready(f"{listening} with {len(config.checks)} checks")
        tasks = [asyncio.create_task(_reload_loop(app, config_path, reloads, listening))]
        interval = systemd.watchdog_interval()
        if interval is not None:
            tasks.append(asyncio.create_task(systemd.run_watchdog(_health(app), interval)))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
        systemd.stopping("stopping: finishing in-flight pings")
        log.info("stopping: finishing in-flight pings")
    finally:
        await runner.cleanup()
    log.info("stopped cleanly")


def _health(app: web.Application) -> Callable[[], str | None]:
    """What the systemd watchdog asks: is the deadline timer still waking up?"""
    rt = app[RUNTIME]

    def problem() -> str | None:
        stale = rt.clock.now() - rt.engine.timer_alive_at
        return f"the deadline timer last ran {stale:.1f} s ago" if stale > TIMER_STALE else None

    return problem


async def _reload_loop(app: web.Application, config_path: Path, reloads: asyncio.Queue[None], listening: str) -> None:
    while True:
        await reloads.get()
        while not reloads.empty():  # a burst of SIGHUPs is one reload
            reloads.get_nowait()
        systemd.reloading()
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            for problem in exc.problems:  # one journal line each, every one saying what happened
                log.error("reload failed, still running the previous config: %s", problem)
            more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            systemd.ready(f"reload failed, still running the previous config: {exc.problems[0]}{more}")
            continue
        try:
            await reload(app, config)
        except (OSError, ValueError) as exc:
            log.error("reload failed, still running the previous config: %s", exc)
            systemd.ready(f"reload failed, still running the previous config: {exc}")
            continue
        log.info("reloaded %s: %d checks", config_path, len(config.checks))
        systemd.ready(f"{listening} with {len(config.checks)} checks (reloaded)")
