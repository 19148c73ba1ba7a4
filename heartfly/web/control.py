"""Operator actions shared by the API and the dashboard: pause (optionally until a time), resume, reload.

A pause with an end is kept in the meta table (`pause_until:<check>`), so a restart re-arms it;
the engine itself only knows paused or not. In a cluster the ends are the leader's to keep: any
node may store one (a pause given to a standby), and the leader, which re-reads them every few
seconds, arms its timer; a timer resumes the check only if the end it was armed for is still the
stored one (another node may have paused it again since, with another end or none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

from aiohttp import web

from heartfly.core import toml_cache
from heartfly.core.config import Config, ConfigError, load_config
from heartfly.core.config_advice import said_at_start
from heartfly.core.listen import with_listen
from heartfly.core.states import Status
from heartfly.core.units import UnitError, parse_duration
from heartfly.core.views import PAUSE_META
from heartfly.server import longlived, systemd
from heartfly.server.engine import Check
from heartfly.store import rows as store
from heartfly.store.api import StoreError
from heartfly.web.runtime import RUNTIME, read_keys
from heartfly.web.words import utc

log = logging.getLogger(__name__)

MAX_PAUSE = 366 * 86400.0
RECHECK = 60.0  # a scheduled resume re-reads the wall clock at least this often (clock changes, suspend)
IN_STEP = 2.0  # how often a node re-reads the stored ends (a cluster's other nodes store them too)
# An end that passed while its check was not paused here yet (a standby's pause still in the
# inbox, or for a check the leader reloads later): kept, and tried again, for this long.
END_KEPT = 600.0
FAILING_TOLD = 5  # rounds of IN_STEP in a row the stored ends could not be read before a warning
# The time form of a pause's end (the OpenAPI document states the same pattern).
UNTIL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})?")


class Control:
    def __init__(self) -> None:
        self.until: dict[str, float] = {}  # check name -> when its pause ends (as shown; its timer's, if armed)
        self.timers: dict[str, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()  # every timer not done, armed or not: awaited at stop
        # Bumped by each pause and resume given here: a stored end read while one was being
        # stored is not taken over the newer one (rearm).
        self.changes: dict[str, int] = {}
        self.storing: dict[str, int] = {}  # check name -> pauses and resumes under way here
        self.reload_lock = asyncio.Lock()
        # The management API's changes, each decided (which check a `unique` create finds, the
        # table an update starts from) and stored under it, and the checks pings auto-provision:
        # two requests at once would decide from the same checks, and make a check twice or lose
        # one's change (stored.put takes reload_lock only to store).
        self.api_writes = asyncio.Lock()


CONTROL = web.AppKey("control", Control)  # set by create_app


async def control_context(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context after the engine's: re-arms pauses that end later, cancels them on stop."""
    ctl = app[CONTROL]
    await rearm(app)
    keeper = asyncio.create_task(_keep_in_step(app), name="heartfly-pause-ends")
    yield
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    for task in list(ctl.tasks):
        task.cancel()
    for task in list(ctl.tasks):
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def rearm(app: web.Application) -> None:
    """Follow the ends of timed pauses the database holds: at start, when a cluster node begins to
    lead (the node that was told of a pause may be gone), and every IN_STEP seconds (another node
    may have stored one since). A node that may act (the leader, or a node of its own) arms each
    end it has not armed as stored; a standby only keeps them to show."""
    rt, ctl = app[RUNTIME], app[CONTROL]
    assert rt.reader is not None
    changes = dict(ctl.changes)
    stored = await rt.reader.read_meta_prefix(PAUSE_META)
    acts = rt.cluster is None or rt.cluster.leading
    ends: dict[str, float] = {}
    for key, value in stored.items():
        with contextlib.suppress(ValueError):
            ends[key[len(PAUSE_META) :]] = float(value)
    for name in {*ends, *ctl.until, *ctl.timers}:
        if ctl.storing.get(name) or ctl.changes.get(name) != changes.get(name):
            continue  # paused or resumed here during the read: what was read may be older
        until = ends.get(name)
        if until is None:  # ended, resumed or paused again without an end, maybe on another node
            _disarm(app, name)
        elif not acts:  # a standby shows it; a timer armed while it led is the new leader's now
            _disarm(app, name)
            ctl.until[name] = until
        elif ctl.until.get(name) != until or (armed := ctl.timers.get(name)) is None or armed.done():
            _disarm(app, name)
            _arm(app, name, until)


async def _keep_in_step(app: web.Application) -> None:
    failing, traced = 0, False  # traced: a fault that is not the database's was told in this run of failures
    while True:
        await asyncio.sleep(IN_STEP)
        try:
            await rearm(app)
        except Exception as exc:  # a database that cannot be read now: the next round tries again
            failing += 1
            # An outage in words (the database's own message); anything else with its traceback,
            # also when it comes after an outage was told (a bug the outage's line would hide).
            trace = not isinstance(exc, StoreError)
            if failing == FAILING_TOLD or (failing > FAILING_TOLD and trace and not traced):  # a blip is not news
                traced = trace
                log.warning("the ends of timed pauses cannot be read (%s); trying again", exc, exc_info=trace)
            else:
                log.debug("the stored ends of timed pauses were not read", exc_info=True)
        else:
            if failing >= FAILING_TOLD:
                log.info("the ends of timed pauses are read again")
            failing, traced = 0, False


def parse_until(text: str, now: float) -> float:
    """An end for a pause: a duration from now ("2h", "1d") or an ISO 8601 time (UTC unless it says)."""
    text = text.strip()
    try:
        end = now + parse_duration(text)
    except UnitError as exc:
        # A duration, past parse_duration's bound: past a pause's too. startswith, not `in`: the
        # other messages quote the text given ("at most" is no duration).
        if str(exc).startswith("at most "):
            raise ValueError("until: at most a year from now (pause without an end instead)") from None
        try:
            if not UNTIL_TIME.fullmatch(text):
                raise ValueError(text)
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(
                f'until: expected a duration ("2h") or an ISO 8601 time ("2026-11-24T08:00:00Z"), got "{text}"'
            ) from None
        end = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    if end <= now:
        raise ValueError("until: must lie in the future")
    if end > now + MAX_PAUSE:
        raise ValueError("until: at most a year from now (pause without an end instead)")
    return end


async def pause(app: web.Application, check: Check, until: float | None) -> None:
    rt, ctl = app[RUNTIME], app[CONTROL]
    with _storing(ctl, check.name):
        _disarm(app, check.name)  # before any await: a timer at its end must not resume it after this
        await rt.engine.pause(check)
        key = PAUSE_META + check.name
        if until is not None and rt.engine.standby is None and check.state.status is not Status.PAUSED:
            # Ended while it was committed (a ping of a check with resume_on_ping): its end would
            # belong to no pause, and be told, once passed, as a pause never applied here.
            log.info("check %s: paused by an operator, and resumed by a ping meanwhile", check.name)
            until = None
            statement = store.delete_meta_statement(key)
        elif until is None:
            statement = store.delete_meta_statement(key)
            log.info("check %s: paused by an operator", check.name)
        else:
            statement = store.meta_statement(key, repr(until))
            ctl.until[check.name] = until
            if rt.cluster is None or rt.cluster.leading:  # else the leader arms it from the database
                _disarm(app, check.name)  # a pause given twice at once: one timer
                _arm(app, check.name, until)
            log.info("check %s: paused by an operator until %s", check.name, utc(until))
        assert rt.writer is not None
        await rt.writer.submit(store.Write(statements=[statement]))


def passed_on(app: web.Application) -> bool:
    """Whether a pause or resume given here now goes to the leader: a cluster's standby passes it
    through the inbox, and shows the check as it was till the leader applies it (the API's
    `applied: false`). Asked before the action's awaits: a node that takes the lead meanwhile
    has still passed this one on, and its answer shows the check as it was."""
    return app[RUNTIME].engine.standby is not None


async def resume(app: web.Application, check: Check, why: str = "resumed by an operator") -> None:
    rt, ctl = app[RUNTIME], app[CONTROL]
    with _storing(ctl, check.name):
        _disarm(app, check.name)
        await rt.engine.resume(check, why)
        assert rt.writer is not None  # whether or not this node had read an end stored elsewhere yet
        await rt.writer.submit(store.Write(statements=[store.delete_meta_statement(PAUSE_META + check.name)]))


@contextlib.contextmanager
def _storing(ctl: Control, name: str) -> Iterator[None]:
    """A pause or resume under way here: rearm leaves the name alone till it is stored."""
    ctl.storing[name] = ctl.storing.get(name, 0) + 1
    _changed(ctl, name)
    try:
        yield
    finally:
        _changed(ctl, name)
        if (left := ctl.storing[name] - 1) == 0:
            del ctl.storing[name]
        else:
            ctl.storing[name] = left


def _changed(ctl: Control, name: str) -> None:
    ctl.changes[name] = ctl.changes.get(name, 0) + 1


def paused_until(app: web.Application, check: Check) -> float | None:
    if check.state.status is not Status.PAUSED:
        return None
    return app[CONTROL].until.get(check.name)


def _arm(app: web.Application, name: str, until: float) -> None:
    ctl = app[CONTROL]
    ctl.until[name] = until
    task = ctl.timers[name] = asyncio.create_task(_resume_at(app, name, until), name=f"heartfly-resume-{name}")
    ctl.tasks.add(task)
    task.add_done_callback(ctl.tasks.discard)


def _disarm(app: web.Application, name: str) -> bool:
    """Forget a scheduled resume; True if there was one."""
    ctl = app[CONTROL]
    task = ctl.timers.pop(name, None)
    if task is not None and task is not asyncio.current_task():
        task.cancel()
    return ctl.until.pop(name, None) is not None


async def _resume_at(app: web.Application, name: str, until: float) -> None:
    rt = app[RUNTIME]
    while (left := until - rt.clock.now()) > 0:  # noqa: ASYNC110 - follows the wall clock, which may jump
        await asyncio.sleep(min(left, RECHECK))
    key = PAUSE_META + name
    kept_from = until  # END_KEPT counts from its end, or from when its check came (back) into the config
    try:
        while True:
            if rt.engine.lookup_name(name) is None:
                # Taken out of the file (its history, its pause too, is kept for its return) or not
                # reloaded here yet: its end waits for it. Dropped, the check put back would stay
                # paused for good. (No read meanwhile: rearm disarms this timer if the stored end changes.)
                kept_from = rt.clock.now()
                await asyncio.sleep(IN_STEP)
                continue
            assert rt.reader is not None
            if (await rt.reader.read_meta_prefix(key)).get(key) != repr(until):
                # Paused again since (another end, or none) or resumed, maybe on another node: not
                # this timer's to end. A newer end stored is armed by the next rearm.
                if app[CONTROL].timers.get(name) is asyncio.current_task():
                    _disarm(app, name)
                return
            check = rt.engine.lookup_name(name)
            if check is not None and check.state.status is Status.PAUSED:
                log.info("check %s: its pause ended; watching it again", name)
                await resume(app, check, "resumed: its pause ended")
                return
            if rt.clock.now() - kept_from > END_KEPT:  # a pause that never came here
                log.warning(
                    "check %s: its pause's end (%s) passed %s ago and the pause was never applied here;"
                    " the end is dropped (a pause applied after this has no end)", name, utc(until), "10 min",
                )  # fmt: skip
                _disarm(app, name)
                assert rt.writer is not None
                await rt.writer.submit(store.Write(statements=[store.delete_meta_statement(key)]))
                return
            await asyncio.sleep(IN_STEP)  # a standby's pause not applied here yet: it ends once it is
    except Exception:  # the timer task must not die silently: the next rearm arms it again
        log.warning("check %s: could not end its pause yet", name, exc_info=True)


async def reload_config(app: web.Application, source: str = "the API") -> tuple[int, list[str]]:
    """Re-read the config file: (number of checks, []) or (0, problems), keeping the running config.

    The one reload path, for SIGHUP and the API alike: reloads never overlap, and systemd hears
    RELOADING, then READY with a status that says how it went.
    """
    rt, ctl = app[RUNTIME], app[CONTROL]
    path = rt.config.path
    async with ctl.reload_lock:
        systemd.reloading()
        try:  # in a thread: 100k checks take seconds to validate, and pings must be answered meanwhile
            # (outside building(): the cyclic GC stays on for the requests served during the read)
            config = await asyncio.to_thread(load_config, path, toml_cache.directory(os.environ))
            if rt.listen_override is not None:  # validated at start
                config = with_listen(config, rt.listen_override)
        except ConfigError as exc:
            return _refused(exc.problems)
        except Exception as exc:  # a validation bug must not cost the running config
            log.debug("reading %s failed", path, exc_info=True)
            return _refused([f"{path}: cannot load it: {type(exc).__name__}: {exc}"])
        if (emptied := _emptied(rt.config, config)) is not None:
            return _refused([emptied])
        with longlived.building(again=True):
            try:
                keys = read_keys(config)  # the token and keys are re-read on a reload only...
                config = await rt.apply_config(config)
            except ConfigError as exc:  # a check of the file's clashes with one made through the API
                return _refused(exc.problems)
            except (OSError, ValueError) as exc:
                return _refused([str(exc)])
            except Exception as exc:  # a database error while applying it: nothing has switched
                log.error("applying %s failed", path, exc_info=True)
                return _refused([f"{path}: cannot apply it: {type(exc).__name__}: {exc}"])
            rt.use_keys(keys)  # ...and used once nothing can refuse the reload any more
            await rt.drop_taken_over()
    log.info("reloaded %s: %d checks (asked by %s)", path, len(config.checks), source)
    for advice in said_at_start(config):
        log.warning("%s", advice)
    systemd.ready(f"{rt.listening} with {len(config.checks)} checks (reloaded)")
    return len(config.checks), []


def _emptied(running: Config, config: Config) -> str | None:
    """Why a file that is empty or holds only comments is not reloaded while checks are watched or
    the API has a token: it would stop watching every check and turn the API off (`heartfly reload`
    could not undo it), silently, for a file truncated by accident. A restart still starts on it.
    Every check counts, the file's or not: one made through Healthchecks' API or by a `?create=1`
    ping loses its channels and, with ping_key, its slug pings; so does a Healthchecks API key."""
    server = running.server
    keys = (server.api_token_file, server.hc_api_key_file, server.hc_api_key_readonly_file)
    if not config.blank or running.blank or not (running.checks or any(key is not None for key in keys)):
        return None  # (started on such a file itself: a reload of it changes nothing)
    return (
        f"{config.path}: the file is empty or holds only comments; reloading it would stop watching"
        " every check and turn the API off (restart the server to start on an empty file)"
    )


def _refused(problems: list[str]) -> tuple[int, list[str]]:
    for problem in problems:  # one journal line each, every one saying what happened
        log.error("reload failed, still running the previous config: %s", problem)
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    systemd.ready(f"reload failed, still running the previous config: {problems[0]}{more}")
    return 0, problems
