"""What the handlers share: one object under one typed app key, filled in by the cleanup contexts.

It imports nothing else from heartfly.web, so every web module (and the daemon) can use it without
an import loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from heartfly.core import stored_checks
from heartfly.core.checkconfig import CheckConfig
from heartfly.core.clock import Clock
from heartfly.core.config import Config, ConfigError, ServerConfig, read_stored_check, with_stored_checks
from heartfly.core.config_secrets import check_hc_key, check_token
from heartfly.core.dburl import Database
from heartfly.core.stored_checks import StoredCheck
from heartfly.notify.dispatcher import Dispatcher
from heartfly.server.engine import Engine
from heartfly.store import rows as store_rows
from heartfly.store.api import OwnWriter, Reader, StoreError, WriteQueue

if TYPE_CHECKING:  # imported only for a PostgreSQL database (its driver is an extra)
    from heartfly.server.cluster import Node

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    node: str
    role: str  # "leader" | "standby"
    leader: str | None  # the lease's holder, if its lease has not passed
    term: int
    lease_seconds: float
    lease_checked_seconds_ago: float


# The settings a reload cannot change: RESTART_ONLY's values.
Fixed = tuple[tuple[str, int], Database, str, str | None, float]


@dataclass
class Runtime:
    config: Config
    clock: Clock
    token: str | None = None
    reader: Reader | None = None
    writer: OwnWriter | None = None  # the backend app.py opened (tests reach into it)
    dispatcher: Dispatcher | None = None
    # (channel, outcome) -> alert attempts of every sender this process ran (a cluster's node has
    # one per term it leads): /metrics' counters, which go back to 0 only at a restart.
    alert_outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    listening: str = ""  # "listening on http://...", once the port is bound (for systemd's STATUS=)
    # The daemon's, set once the port answers: a restart reads its stored states after (Engine.read_after).
    answering: asyncio.Event | None = None
    listen_override: str | None = None  # serve --listen / HEARTFLY_LISTEN: outranks the file, on reload too
    cluster: Node | None = None  # a PostgreSQL database: this node's role in the cluster
    hc_key: str | None = None  # Healthchecks' Management API: the read-write key...
    hc_readonly_key: str | None = None  # ...and the read-only one
    stored: Mapping[str, StoredCheck] = field(default_factory=dict)  # checks kept in the database
    file_config: Config | None = None  # the operator's file as read, before the stored checks join it
    # Why a long-lived task (the deadline timer, housekeeping, the alert sender, the heartbeat)
    # ended, if one did: the daemon then stops (`stop`, its own) and exits 1 (tasks.watched).
    died: str | None = None
    stop: asyncio.Event | None = None
    _engine: Engine | None = field(default=None, repr=False)
    # The settings a reload cannot change, as the server started with them.
    _started: Fixed = field(default=(("", 0), Path(), "", None, 0.0), repr=False)
    _bound_port: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self._started = _restart_only(self.config.server)

    def task_died(self, why: str) -> None:
        """A long-lived task ended (tasks.watched, which logged it): the server stops."""
        if self.died is None:
            self.died = why
        if self.stop is not None:
            self.stop.set()

    def bound(self, port: int) -> None:
        """The port the server got: the one its file asked for, unless that was 0 (any free port)."""
        self._bound_port = port

    def restart_needed(self, server: ServerConfig | None = None) -> list[str]:
        """The settings `server` (else the config in use) changed since the start that only a restart applies."""
        listen, *now = _restart_only(server or self.config.server)
        (host, port), *was = self._started
        listening = listen in {(host, port), (host, self._bound_port)}  # naming the port "0" got: no change
        same = (listening, *(a == b for a, b in zip(now, was, strict=True)))
        return [name for name, unchanged in zip(RESTART_ONLY, same, strict=True) if not unchanged]

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "used before start-up finished"
        return self._engine

    async def settled(self) -> None:
        """Wait until what the checks' states already show is committed (a deadline's flip is
        queued when it fires), so a history read next agrees with the state beside it. While
        writes fail: at once, and the history is what was committed."""
        if self._engine is not None:  # a cluster leader's writer is its term's, not self.writer
            with contextlib.suppress(StoreError):
                await self._engine.writer.flush()

    def ping_writer(self) -> WriteQueue | None:
        """The writer pings go to now: the store's, a cluster leader's fenced one, or (a standby)
        the inbox's."""
        if self._engine is None:
            return self.writer
        return self._engine.standby[1] if self._engine.standby is not None else self._engine.writer

    def cluster_status(self) -> ClusterStatus | None:
        """This node's role in a cluster (PostgreSQL), for /readyz, /metrics and the dashboard."""
        node = self.cluster
        if node is None:
            return None
        holding = node.holding
        age = time.monotonic() - node.holding_read_at  # a lease read long ago names no leader now
        leader = holding.holder if holding is not None and holding.expires_in - age > 0 else None
        return ClusterStatus(
            node=node.node_id,
            role="leader" if node.leading else "standby",
            leader=leader or None,
            term=holding.term if holding is not None else 0,
            lease_seconds=node.lease.length,
            lease_checked_seconds_ago=round(age, 3),
        )

    def timer_stale(self) -> float | None:
        """Seconds since the deadline timer last woke, if longer than TIMER_STALE, else None: /readyz
        and the systemd watchdog both go by this."""
        return self.engine.timer_alive.stale()

    def load_keys(self, config: Config) -> None:
        """The API token and Healthchecks' keys from their files (at start and on reload), all or
        none: ConfigError leaves the ones in use."""
        self.use_keys(read_keys(config))

    def use_keys(self, keys: Keys) -> None:
        self.token, self.hc_key, self.hc_readonly_key = keys

    async def drop_taken_over(self) -> None:
        """Delete the stored checks the file has taken over (its table of the name has the check's
        key: `heartfly export`'s, appended, then a reload or a start), which serve only from the file
        now: kept, a check taken out of the file later would come back as the API's old copy. Under
        the reload lock, once the file is served; a database error leaves them to the next reload."""
        if self.file_config is None or self.writer is None:
            return
        checks = self.file_config.checks
        names = [n for n, c in self.stored.items() if n in checks and checks[n].key == c.table.get("key")]
        if not names:
            return
        # Each only while its row is the copy this node took over: in a cluster another node may
        # have changed it, or deleted it and made another check of the name, since this node read it
        rows = {n: stored_checks.META_PREFIX + n for n in names}
        try:
            statements = [
                store_rows.while_meta_is(store_rows.delete_meta_statement(row), row, self.stored[n].encode())
                for n, row in rows.items()
            ]
            await self.writer.submit(store_rows.Write(statements=statements, on_refuse=lambda: None))
            assert self.reader is not None
            kept = [n for n, row in rows.items() if row in await self.reader.read_meta_prefix(row)]
        except StoreError as exc:
            log.warning("the checks the file took over from the API stay stored for now: %s", exc)
            return
        for name in kept:
            log.warning("check %s: the file's [checks.%s] took it over, but its copy in the database was changed"
                        " through the API on another node since, and is kept", name, name)  # fmt: skip
        names = [n for n in names if n not in kept]
        taken = {n: self.stored[n] for n in names}
        self.stored = {n: c for n, c in self.stored.items() if n not in names}
        for name, copy in taken.items():
            said = ("check %s: the file's [checks.%s] (its key) took over the check made through the API,"
                    " whose copy in the database is deleted")  # fmt: skip
            # The file's table wins whatever else it says: one pasted from an export older than a
            # change made through the API since (a script's new schedule) is told, not silent
            if differs := _differences(checks[name], read_stored_check(self.file_config, name, copy.table)):
                log.warning(said + "; its %s differed from the file's, whose are kept", name, name, differs)
            else:
                log.info(said, name, name)

    def with_stored(
        self, file_config: Config, stored: Mapping[str, StoredCheck] | None = None, left_out: list[str] | None = None
    ) -> Config:
        """The operator's file plus the checks kept in the database; ConfigError on a clash (and,
        without `left_out`, on a stored check that does not validate: see with_stored_checks)."""
        stored = self.stored if stored is None else stored
        tables = {name: (c.origin, c.table) for name, c in stored.items()}
        config = with_stored_checks(file_config, tables, left_out)
        return replace(config, left_out=tuple(n for n in tables if n not in config.checks))

    async def apply_config(
        self, file_config: Config, stored: Mapping[str, StoredCheck] | None = None, left_out: list[str] | None = None
    ) -> Config:
        """Switch the running server to a new, already validated file's config, with the stored
        checks (`stored`, else the ones it has); returns the whole config. ConfigError when a
        stored check and the file clash, and nothing changes."""
        config = self.with_stored(file_config, stored, left_out)
        if waiting := self.restart_needed(config.server):
            log.warning("%s changed: %s take effect only after a restart",
                        " and ".join(waiting), ", ".join(RESTART_ONLY))  # fmt: skip
        # Switched before the engine's (which awaits reads): a cluster's term that begins meanwhile
        # is built on this config, and the dispatcher knows the checks and channels the engine's
        # alerts name. Taken back if the engine's fails (a database error reading a returning
        # check's pings, before it changes anything): not the server on one config, the engine on
        # another.
        before = (self.config, self.file_config, self.stored)
        renamed, fresh = stored_checks.changes(self.stored, stored) if stored is not None else ({}, set())
        dispatcher = self.dispatcher
        self.config, self.file_config = config, file_config
        if stored is not None:
            self.stored = stored
        if dispatcher is not None:
            dispatcher.config = config
        engine = self.engine
        try:
            await engine.apply_config(config, renamed, fresh)
        except BaseException:
            if engine.config is config:  # applied after all (a cancel at its very end): keep it
                raise
            self.config, self.file_config, self.stored = before
            if dispatcher is not None:
                dispatcher.config = before[0]
            if self.engine is not engine:  # a cluster term began meanwhile, built on this config
                if self.dispatcher is not None:
                    self.dispatcher.config = before[0]
                try:
                    await self.engine.apply_config(before[0])
                except Exception:  # the reload's own error is the one to tell
                    log.exception("taking back a failed reload failed on the leader's engine")
                    if self.engine.config is config:  # it kept the new config: so does the server beside it,
                        # whose dispatchers send its alerts
                        self.config, self.file_config = config, file_config
                        if stored is not None:
                            self.stored = stored
                        for each in (dispatcher, self.dispatcher):
                            if each is not None:
                                each.config = config
            raise
        return config


RUNTIME = web.AppKey("runtime", Runtime)


def _differences(file: CheckConfig, api: CheckConfig | None) -> str:
    """The settings in which a check made through the API differs from the file's table that took
    it over ("" for heartfly export's table, as printed), named as the file names them."""
    if api is None:
        return "table (which no longer reads)"
    return ", ".join(
        f for f in CheckConfig._fields if f not in ("origin", "name") and getattr(file, f) != getattr(api, f)
    )


# A cluster's node_id and lease are taken once, by its lease loop (server.cluster), at the start.
RESTART_ONLY = ("server.listen", "server.database", "server.synchronous", "server.node_id", "server.lease")


def _restart_only(server: ServerConfig) -> Fixed:
    """The values of RESTART_ONLY, in its order."""
    return (server.host, server.port), server.database, server.synchronous, server.node_id, server.lease


Keys = tuple[str | None, str | None, str | None]  # the API token, Healthchecks' read-write and read-only keys


def read_keys(config: Config) -> Keys:
    """The keys from their files, not yet in use. ConfigError, naming the setting, for one that
    cannot be read or made: a start exits 2 (a restart loop cannot fix it), a reload is refused."""
    server = config.server
    return (
        _key("api_token_file", server.api_token_file, load_token),
        _key("hc_api_key_file", server.hc_api_key_file, load_hc_key),
        _key("hc_api_key_readonly_file", server.hc_api_key_readonly_file, load_hc_key),
    )


def _key(setting: str, path: Path | None, load: Callable[[Path | None], str | None]) -> str | None:
    try:
        return load(path)
    except OSError as exc:  # the file went away or changed since the config was checked
        raise ConfigError([f"server.{setting}: cannot read {path}: {exc.strerror or exc}"]) from None
    except ValueError as exc:
        raise ConfigError([f"server.{setting}: {exc}"]) from None


def load_hc_key(path: Path | None) -> str | None:
    """A Healthchecks API key from its file, created (mode 0600) with a fresh key if missing."""
    return load_token(path, make=lambda: secrets.token_urlsafe(24), check=check_hc_key)  # 24 bytes: 32 characters


def load_token(
    path: Path | None,
    make: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    check: Callable[[str, Path], str] = check_token,
) -> str | None:
    """The API token from its file, which is created (mode 0600) with a fresh token if missing."""
    if path is None:
        return None
    if not path.exists():
        try:
            _create(path, make)
        except OSError as exc:  # the packaged unit's user may not write /etc/heartfly, say
            raise ValueError(f"{path} is missing and cannot be made here ({exc.strerror or exc}): write the key"
                             f" into it yourself, or let the server's user write {path.parent}") from None  # fmt: skip
    return check(path.read_text(encoding="utf-8").strip(), path)


def _create(path: Path, make: Callable[[], str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: two servers starting at once on one config (a
    # cluster's nodes on one machine) both end up with the one token, never a half-written file.
    fd, aside = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp's mode is 0600
            handle.write(make() + "\n")
        os.link(aside, path)
        log.info("created a new key in %s", path)
    except FileExistsError:
        pass  # another server made it first: use that one
    finally:
        os.unlink(aside)
