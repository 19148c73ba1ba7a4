"""`heartfly serve`: start the app, handle signals (SIGHUP reloads), stop within a bound."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from aiohttp import web, web_app

from heartfly.core.config import Config, ConfigError
from heartfly.core.config_advice import said_at_start
from heartfly.core.dburl import Database, PostgresDatabase
from heartfly.core.units import human_duration
from heartfly.server import longlived, systemd
from heartfly.server.tasks import ran_to_its_end, watched
from heartfly.store import api as store_api
from heartfly.store import backend, sqlite
from heartfly.store.api import DiskFull, Locked, StoreError
from heartfly.web import control
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 5.0
BACKLOG = 2048
# A connection waiting for a request is closed after this long: idle keep-alives, and clients that
# never finish their request line and headers (aiohttp has no separate header timeout; its
# keep-alive timer runs from the connect, and headers dribbled in do not restart it). Longer than
# a reverse proxy's idle upstream connections (nginx: 60 s), so the proxy closes first and never
# sends a request down a connection being closed. Request bodies have pings.BODY_TIMEOUT.
IDLE_TIMEOUT = 75.0


class StartError(Exception):
    """Start-up failed for a reason the operator can fix; the message says which. `code`: the exit
    status; 2 (as for a broken config) where starting again cannot help, which the systemd unit's
    RestartPreventExitStatus=2 takes as "do not restart"."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


_asked_to_reload = False  # a SIGHUP came before serve() took the signals (keep_early_sighup)


def keep_early_sighup() -> None:
    """From here until serve() takes the signals, a SIGHUP is kept for a reload once serving. It
    came while the config was read (seconds with 100k checks: a `kill -HUP` by a config tool, a
    supervisor), and its default action ended the process then, without a line in the log."""

    def keep(signum: int, frame: object) -> None:
        global _asked_to_reload
        _asked_to_reload = True

    signal.signal(signal.SIGHUP, keep)


async def serve(config: Config, listen: str | None = None) -> None:
    """Serve a loaded config (loaded once: with 100k checks that takes seconds) until SIGTERM.
    `listen`: the --listen the config was given, given again to every reloaded config."""
    app = create_app(config)
    app[RUNTIME].listen_override = listen
    # Handlers go in first: a SIGHUP or SIGTERM during start-up must not kill the process.
    loop = asyncio.get_running_loop()
    stop = app[RUNTIME].stop = asyncio.Event()  # also set when a long-lived task dies (Runtime.task_died)
    reloads: asyncio.Queue[None] = asyncio.Queue()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, None)
    if _asked_to_reload:  # the file may have changed after it was read: read it again once serving
        reloads.put_nowait(None)
    store_api.migrating = functools.partial(systemd.extending_start, "migrating the database")
    try:
        await _run(app, stop, reloads)
    finally:
        store_api.migrating = contextlib.nullcontext
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _run(app: web.Application, stop: asyncio.Event, reloads: asyncio.Queue[None]) -> None:
    config = app[RUNTIME].config
    systemd.open_socket()  # before the port: its clients may take every descriptor before READY=1
    # Bind first: a port in use must fail the start before the database is touched (no downtime
    # accounting, no alive mark from a start that never served).
    sock = _bind(config.server.host, config.server.port, config)
    app[RUNTIME].bound(sock.getsockname()[1])
    # A restart answers pings first and reads its stored states after (Engine.finish_load).
    app[RUNTIME].answering = answering = asyncio.Event()
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        keepalive_timeout=IDLE_TIMEOUT,
    )
    failed = False
    stopping = False  # the run ended as asked (SIGTERM), not by an error of its own
    try:
        try:
            with longlived.building():
                started = await _setup(runner, stop, config.server.database)
        except StoreError as exc:  # a wrong URL or password, a newer schema, no database: not fixed by a restart loop
            full = _full_disk(config.server.database, isinstance(exc, DiskFull))
            if full is not None:  # but space can come back: systemd restarts on exit 1
                raise StartError(f"{full}: {exc}", code=1) from None
            if isinstance(exc, Locked):  # and a lock is let go
                raise StartError(f"{exc} (another program holds it: systemd starts it again)", code=1) from None
            if (why := await backend.may_come_back(config.server.database)) is not None:  # so can a PostgreSQL server
                raise StartError(f"{exc} ({why}: systemd starts it again)", code=1) from None
            raise StartError(str(exc), code=2) from None
        except sqlite.ReadError as exc:  # a start's read found the file damaged: no restart loop mends it
            code = 2 if sqlite.is_damage(exc) else 1
            raise StartError(f"cannot read database {config.server.database}: {exc}", code=code) from None
        except ConfigError as exc:  # a check of the file's clashes with one made through the API; a key file
            raise StartError("\n".join(exc.problems), code=2) from None
        except (OSError, ValueError) as exc:
            raise StartError(str(exc)) from None
        if not started:
            systemd.stopping("stopping: asked to during the start")
            log.info("stopping: asked to during the start")
        else:
            await web.SockSite(runner, sock).start()
            answering.set()
            config = app[RUNTIME].config  # now with the checks made through the API, which setup read
            if config.kept_parse is not None:  # said, so that an operator (and the system test) can tell
                checks = ", and its checks as validated then" if config.kept_checks is not None else ""
                log.info("read %s through its parse kept in %s (the file has not changed since)%s",
                         config.path, config.kept_parse, checks)  # fmt: skip
            elif config.kept_checks is not None:  # a file with TOML dates: its parse is not kept, its checks are
                log.info("read the checks of %s as validated when the file was last read, kept in %s",
                         config.path, config.kept_checks)  # fmt: skip
            where = []
            for address in runner.addresses:
                host, port = address[0], address[1]
                shown = f"[{host}]" if ":" in host else host
                where.append(f"http://{shown}:{port}")
                log.info("Heartfly listening on http://%s:%d with %d checks", shown, port, len(config.checks))
            for advice in said_at_start(config):
                log.warning("%s", advice)
            # systemd: ready only now, with the database open and the port bound.
            app[RUNTIME].listening = listening = f"listening on {' '.join(where)}"
            systemd.ready(f"{listening} with {len(config.checks)} checks")
            died = app[RUNTIME].task_died
            tasks = [watched(_reload_loop(app, reloads), "heartfly-reloads", died)]
            interval = systemd.watchdog_interval()
            if interval is not None:
                tasks.append(watched(systemd.run_watchdog(_health(app), interval), "heartfly-watchdog", died))
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
            systemd.stopping("stopping: finishing in-flight pings")
            log.info("stopping: finishing in-flight pings")
        stopping = True
    except StartError:
        failed = True
        raise
    finally:
        try:
            await runner.cleanup()
        except Exception as exc:
            if not failed:
                # Only after a stop: an error that ended the run must not be replaced by this line.
                if (lost := _store_errors(exc) if stopping else None) is None:
                    raise
                # A full disk: what memory held (state changes, the clean-stop mark) is not stored.
                raise StartError(
                    f"the stop could not store what it held ({lost}): the next start counts it as an unclean stop"
                ) from None
            # Not raised: it would replace the StartError's one line (a writer that failed at
            # start fails again as it closes).
            log.debug("cleaning up after the failed start failed too", exc_info=True)
        finally:
            sock.close()
    if (why := app[RUNTIME].died) is not None:  # logged with its traceback as it happened
        raise StartError(f"stopped because {why}: exit 1, so that systemd starts Heartfly again")
    log.info("stopped cleanly")


async def _setup(runner: web.AppRunner, stop: asyncio.Event, database: Database) -> bool:
    """runner.setup(); whether it ended, or was given up for a stop (SIGTERM) on PostgreSQL. There,
    a node's start (a first term's, with a big config: seconds) holds the lease without leading yet:
    waited for, it kept a standby from taking over, and a stop longer than systemd's TimeoutStopSec
    was killed, the lease held until it passed. Given up, the node frees the lease at once."""
    if not isinstance(database, PostgresDatabase):
        await runner.setup()
        return True
    return await ran_to_its_end(asyncio.create_task(runner.setup(), name="heartfly-setup"), stop)


def _store_errors(exc: Exception) -> str | None:
    """The distinct messages of a cleanup that failed only on database writes, else None."""
    errors = exc.exceptions if isinstance(exc, web_app.CleanupError) else [exc]
    if not all(isinstance(error, StoreError) for error in errors):
        return None
    return "; ".join(dict.fromkeys(str(error) for error in errors))


# Less free space than this is a full disk to SQLite: a commit and the WAL's index need a few pages.
FULL_BELOW = 1 << 20


def _full_disk(database: Database, said: bool = False) -> str | None:
    """What to say if a SQLite database's disk is full (`said`: the error itself says so), else None."""
    if not isinstance(database, Path):
        return None
    if said:
        return f"the disk (or quota) holding {database} is full: free some space (systemd starts it again)"
    folder = database.parent
    while not folder.exists() and folder != folder.parent:  # a folder the start would have made
        folder = folder.parent
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    free = stat.f_bavail * stat.f_frsize
    if free >= FULL_BELOW:
        return None
    return f"the disk holding {database} is full ({free // 1024} KiB free): free some space (systemd starts it again)"


def _bind(host: str, port: int, config: Config) -> socket.socket:
    """A listening socket, or StartError saying why not (and, for a port in use, how to pick another)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:  # one line: under systemd each line is a journal entry
            raise StartError(
                f"cannot listen on {where}: address already in use (another Heartfly, or another program?);"
                f" pick another port with --listen HOST:PORT, HEARTFLY_LISTEN=HOST:PORT or listen in [server]"
                f" of {config.path}"
            ) from None
        raise StartError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


def _health(app: web.Application) -> Callable[[], str | None]:
    """What the systemd watchdog asks: is the deadline timer still waking up?"""
    rt = app[RUNTIME]

    def problem() -> str | None:
        stale = rt.timer_stale()
        return f"the deadline timer last ran {human_duration(stale)} ago" if stale is not None else None

    return problem


async def _reload_loop(app: web.Application, reloads: asyncio.Queue[None]) -> None:
    while True:
        await reloads.get()
        while not reloads.empty():  # a burst of SIGHUPs is one reload
            reloads.get_nowait()
        try:
            await control.reload_config(app, "SIGHUP")
        except Exception as exc:  # the loop serves every later SIGHUP: it must not die
            why = f"reload failed, still running the previous config: {type(exc).__name__}: {exc}"
            log.error("%s", why)
            log.debug("the failed reload's traceback", exc_info=True)
            systemd.ready(why)  # not left RELOADING
