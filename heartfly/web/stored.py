"""Checks kept in the database (core/stored_checks.py) on a running server: read at start, made,
changed and deleted through the API, and picked up from the other nodes of a cluster.

Each change is committed first and applied after, under the reload lock, so a reload and an API
call never interleave and a change that cannot be stored changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from heartfly.core.config import Config, ConfigError
from heartfly.core.stored_checks import META_PREFIX, StoredCheck, decode_all
from heartfly.store import rows as store
from heartfly.store.api import StoreError
from heartfly.web.control import CONTROL
from heartfly.web.runtime import RUNTIME, Runtime

log = logging.getLogger(__name__)

POLL = 1.0  # a cluster node reads the stored checks this often (another node may have changed them)


async def load(rt: Runtime) -> None:
    """At start: the stored checks join the file's; ConfigError when they clash."""
    assert rt.reader is not None
    found, problems = decode_all(await rt.reader.read_meta_prefix(META_PREFIX))
    for problem in problems:
        log.error("left out: %s", problem)
    rt.file_config = rt.config
    rt.config = rt.with_stored(rt.config, found)
    rt.stored = found


async def put(app: web.Application, check: StoredCheck, *, only_new: bool = False) -> Config:
    """Store a made or changed check and serve it; ConfigError (nothing stored) when it does not
    fit. `only_new`: leave a check that exists by then alone (two requests made it at once)."""
    rt = app[RUNTIME]
    async with app[CONTROL].reload_lock:
        if only_new and check.name in rt.config.checks:
            return rt.config
        stored = {**rt.stored, check.name: check}
        assert rt.file_config is not None
        rt.with_stored(rt.file_config, stored)  # raises before anything is written
        await _commit(rt, store.meta_statement(META_PREFIX + check.name, check.encode()))
        return await rt.apply_config(rt.file_config, stored)


async def rename(app: web.Application, old: str, check: StoredCheck) -> Config:
    """A stored check under a new name (its key, and so its uuid, kept): one change, as put()."""
    rt = app[RUNTIME]
    async with app[CONTROL].reload_lock:
        stored = {**{n: c for n, c in rt.stored.items() if n != old}, check.name: check}
        assert rt.file_config is not None
        rt.with_stored(rt.file_config, stored)
        await _commit(
            rt,
            store.delete_meta_statement(META_PREFIX + old),
            store.meta_statement(META_PREFIX + check.name, check.encode()),
        )
        config = await rt.apply_config(rt.file_config, stored)
    log.info("check %s: renamed %s through the API", old, check.name)
    return config


async def delete(app: web.Application, name: str) -> None:
    """Forget a stored check; its history stays in the database, as for a check taken out of the file."""
    rt = app[RUNTIME]
    async with app[CONTROL].reload_lock:
        stored = {n: c for n, c in rt.stored.items() if n != name}
        await _commit(rt, store.delete_meta_statement(META_PREFIX + name))
        assert rt.file_config is not None
        await rt.apply_config(rt.file_config, stored)
    log.info("check %s: deleted through the API", name)


async def follow(app: web.Application) -> None:
    """A cluster node: apply the stored checks another node changed, within POLL seconds."""
    rt = app[RUNTIME]
    refused: set[str] = set()  # problems already logged, so a clash is one error line, not one a second
    while True:
        await asyncio.sleep(POLL)
        try:
            await _follow_once(app, rt, refused)
        except StoreError as exc:
            log.debug("reading the stored checks failed: %s", exc)
        except Exception:  # the task must not die: the next round tries again
            log.exception("applying the stored checks failed")


async def _follow_once(app: web.Application, rt: Runtime, refused: set[str]) -> None:
    assert rt.reader is not None
    found, _ = decode_all(await rt.reader.read_meta_prefix(META_PREFIX))
    if {n: c.encode() for n, c in found.items()} == {n: c.encode() for n, c in rt.stored.items()}:
        return
    async with app[CONTROL].reload_lock:
        assert rt.file_config is not None
        try:
            await rt.apply_config(rt.file_config, found)
        except ConfigError as exc:
            for problem in set(exc.problems) - refused:
                log.error("a check made through the API on another node is left out here: %s", problem)
            refused.update(exc.problems)
            return
    refused.clear()


async def _commit(rt: Runtime, *statements: store.Statement) -> None:
    assert rt.writer is not None
    await rt.writer.submit(store.Write(statements=list(statements)))
