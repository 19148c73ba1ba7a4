"""`heartfly serve`: start the app, handle signals (SIGHUP reloads), stop within a bound."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
from pathlib import Path

from aiohttp import web

from heartfly.config import ConfigError, load_config
from heartfly.store import StoreError
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
        for address in runner.addresses:
            host, port = address[0], address[1]
            shown = f"[{host}]" if ":" in host else host
            log.info("Heartfly listening on http://%s:%d with %d checks", shown, port, len(config.checks))
        reloader = asyncio.create_task(_reload_loop(app, config_path, reloads))
        try:
            await stop.wait()
        finally:
            reloader.cancel()
        log.info("stopping: finishing in-flight pings")
    finally:
        await runner.cleanup()
    log.info("stopped cleanly")


async def _reload_loop(app: web.Application, config_path: Path, reloads: asyncio.Queue[None]) -> None:
    while True:
        await reloads.get()
        while not reloads.empty():  # a burst of SIGHUPs is one reload
            reloads.get_nowait()
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            log.error("reload failed, still running the previous config:\n%s", exc)
            continue
        try:
            await reload(app, config)
        except (OSError, ValueError) as exc:
            log.error("reload failed, still running the previous config: %s", exc)
            continue
        log.info("reloaded %s: %d checks", config_path, len(config.checks))
