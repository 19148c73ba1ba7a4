"""Checks kept in the database (core/stored_checks.py) on a running server: read at start, made,
changed and deleted through the API, and picked up from the other nodes of a cluster.

Each change is committed first and applied after, under the reload lock, so a reload and an API
call never interleave and a change that cannot be stored changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from aiohttp import web

from heartfly.core.config import ConfigError
from heartfly.core.stored_checks import META_PREFIX, StoredCheck, decode, decode_all
from heartfly.core.views import PAUSE_META
from heartfly.store import rows as store
from heartfly.store.api import StoreError
from heartfly.web.control import CONTROL
from heartfly.web.runtime import RUNTIME, Runtime

log = logging.getLogger(__name__)

POLL = 1.0  # a cluster node reads the stored checks this often (another node may have changed them)


Outcome = Literal["written", "exists", "gone", "capped"]


async def load(rt: Runtime) -> None:
    """At start: the stored checks join the file's. ConfigError when a name is in both; a stored
    check that does not validate (its channel gone from the file, say) is left out, logged."""
    assert rt.reader is not None
    found, problems = decode_all(await rt.reader.read_meta_prefix(META_PREFIX))
    rt.file_config = rt.config
    rt.config = rt.with_stored(rt.config, found, problems)
    for problem in problems:
        log.error("a check made through the API is left out (fix the file, or delete it through the API): %s", problem)
    rt.stored = found
    await rt.drop_taken_over()


def taken(rt: Runtime, name: str) -> bool:
    """Whether a check holds `name`: one served, or a stored one left out (it no longer fits the
    file), which is still the API's and comes back once the file fits it again."""
    return name in rt.config.checks or name in rt.stored


async def put(app: web.Application, check: StoredCheck, *, new: bool, cap: int | None = None) -> Outcome:
    """Store a made (`new`) or changed check and serve it. Decided under the reload lock, so two
    requests at once cannot both make one name: "exists" (a new check's name is taken by then),
    "gone" (a changed check was deleted meanwhile), "capped" (an auto-provisioned check past
    `cap`), else "written". ConfigError, and nothing stored, when the check does not validate."""
    rt = app[RUNTIME]
    async with app[CONTROL].reload_lock:
        if new and taken(rt, check.name):
            return "exists"
        if not new and check.name not in rt.stored:
            return "gone"
        if cap is not None and sum(1 for c in rt.stored.values() if c.origin == "auto") >= cap:
            return "capped"
        stored = {**rt.stored, check.name: check}
        if not new:  # only where it is still stored: another node may have deleted it within POLL
            changed = store.changed_meta_statement(META_PREFIX + check.name, check.encode())
            await _store(rt, stored, check.name, changed)
            return await _settle(rt, stored, check, check.name)
        return await _make(rt, stored, check)


async def _make(rt: Runtime, stored: dict[str, StoredCheck], check: StoredCheck) -> Outcome:
    """Store a new check. A new check is new: the history another check left under its name is not
    its own (nor the end of its timed pause, which would resume it if it were paused). Each step only
    while no check of the name is stored: two nodes of a cluster making one name at once (a ?create=1
    ping on each) make it once, and the second does not take away the history of the first's pings."""
    key = META_PREFIX + check.name
    await _store(
        rt,
        stored,
        check.name,
        store.unless_meta(store.tombstone_statement(check.name), key),
        store.unless_meta(store.delete_meta_statement(PAUSE_META + check.name), key),
        store.new_meta_statement(key, check.encode()),
    )
    return await _settle(rt, stored, check)


async def _settle(rt: Runtime, stored: dict[str, StoredCheck], check: StoredCheck, old: str | None = None) -> Outcome:
    """Serve `stored` if `check` is the one its name's meta row holds after a commit that wrote it
    only where none was ("written"), else the check another node made first ("exists"). A check
    changed or renamed from `old` whose name then holds nothing was deleted by another node before
    this commit ("gone"): served without it. A change another node wrote after this one's is
    served as written: follow() serves theirs within POLL."""
    key = META_PREFIX + check.name
    assert rt.reader is not None and rt.file_config is not None
    try:
        text = (await rt.reader.read_meta_prefix(key)).get(key)
    except StoreError:  # served as made: follow() corrects it within POLL if another node won
        text = check.encode()
    if text is None and old is not None:
        await rt.apply_config(rt.file_config, {n: c for n, c in rt.stored.items() if n != old}, [])
        return "gone"
    if text is None or text == check.encode() or old == check.name:
        await rt.apply_config(rt.file_config, stored, [])
        return "written"
    # Another node made it first: serve its check, as follow() would within POLL (which says why
    # if this node cannot).
    with contextlib.suppress(ValueError, ConfigError):
        await rt.apply_config(rt.file_config, {**rt.stored, check.name: decode(check.name, text)}, [])
    return "exists"


async def rename(app: web.Application, old: str, check: StoredCheck) -> Outcome:
    """A stored check under a new name (its key, and so its uuid, kept); as put(). Its history goes
    with it, and the history another check left under the new name is not taken up."""
    rt = app[RUNTIME]
    async with app[CONTROL].reload_lock:
        if old not in rt.stored:
            return "gone"
        if taken(rt, check.name):
            return "exists"
        stored = {**{n: c for n, c in rt.stored.items() if n != old}, check.name: check}
        # Its row goes with it, a timed pause's end too (control.rearm arms it under the new name),
        # while it is stored under its old name: a rename tried again after a commit that went
        # through unanswered (in doubt) would tombstone its own row, and drop its end. The new
        # name is taken first, where no check holds it, and the rest is done only if this check
        # holds it: another node of a cluster may have made a check of that name within the second
        # before this one reads it, which a rename must not write over (nor tombstone its pings),
        # and only while this check is stored under its old name: deleted on another node within
        # that second, it is gone, not brought back under its new name without its history.
        new, text = META_PREFIX + check.name, check.encode()
        moves = (
            store.tombstone_statement(check.name),
            store.rename_check_statement(old, check.name),
            store.delete_meta_statement(PAUSE_META + check.name),
            store.rename_meta_statement(PAUSE_META + old, PAUSE_META + check.name),
        )
        statements = (
            store.new_meta_while_statement(new, text, META_PREFIX + old),
            *(store.while_meta_is(store.while_meta(statement, META_PREFIX + old), new, text) for statement in moves),
            store.while_meta_is(store.delete_meta_statement(META_PREFIX + old), new, text),
        )
        await _store(rt, stored, check.name, *statements)
        outcome = await _settle(rt, stored, check, old)
    if outcome == "written":
        log.info("check %s: renamed %s through the API", old, check.name)
    return outcome


async def delete(app: web.Application, name: str) -> bool:
    """Forget a stored check (False: it was gone already); its history stays in the database, as
    for a check taken out of the file: the file may take the check over (`heartfly export`). A
    check made through the API under its name later is new (put)."""
    rt = app[RUNTIME]
    async with app[CONTROL].reload_lock:
        if name not in rt.stored:
            return False
        stored = {n: c for n, c in rt.stored.items() if n != name}
        await _commit(rt, store.delete_meta_statement(META_PREFIX + name))
        assert rt.file_config is not None
        await rt.apply_config(rt.file_config, stored, [])
    log.info("check %s: deleted through the API", name)
    return True


async def _store(rt: Runtime, stored: dict[str, StoredCheck], name: str, *statements: store.Statement) -> None:
    """Check that `name` validates among `stored` (ConfigError if not; the others, as loaded, may
    be left out), and commit the statements; _settle serves what the commit left stored."""
    assert rt.file_config is not None
    left: list[str] = []
    config = rt.with_stored(rt.file_config, stored, left)
    if name not in config.checks:
        raise ConfigError([p for p in left if p.startswith(f"checks.{name}")] or left)
    await _commit(rt, *statements)


async def follow(app: web.Application) -> None:
    """A cluster node: apply the stored checks another node changed, within POLL seconds."""
    logged: set[str] = set()  # problems already logged, so one is one error line, not one a second
    while True:
        await asyncio.sleep(POLL)
        try:
            await _follow_once(app, logged)
        except StoreError as exc:
            log.debug("reading the stored checks failed: %s", exc)
        except Exception:  # the task must not die: the next round tries again
            log.exception("applying the stored checks failed")


async def _follow_once(app: web.Application, logged: set[str]) -> None:
    rt = app[RUNTIME]
    assert rt.reader is not None
    async with app[CONTROL].reload_lock:  # read and applied under it: a local change cannot slip between
        found, problems = decode_all(await rt.reader.read_meta_prefix(META_PREFIX))
        if {n: c.encode() for n, c in found.items()} == {n: c.encode() for n, c in rt.stored.items()}:
            return
        assert rt.file_config is not None
        try:
            await rt.apply_config(rt.file_config, found, problems)
        except ConfigError as exc:
            problems.extend(exc.problems)
    for problem in set(problems) - logged:
        log.error("a check made through the API on another node is left out here: %s", problem)
    logged.clear()
    logged.update(problems)


async def _commit(rt: Runtime, *statements: store.Statement) -> None:
    assert rt.writer is not None
    # Refused if its commit fails, not retried: the caller is told so, and nothing changed.
    await rt.writer.submit(store.Write(statements=list(statements), on_refuse=_nothing))


def _nothing() -> None:
    pass
