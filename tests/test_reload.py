"""Reloading the config (SIGHUP, the API): a bad file or an unexpected error never stops later reloads (both stores)."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import sqlite3
import threading
import types
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.config import Config, load_config
from heartfly.core.states import (
    Deadline,
    DeadlineKind,
    Event,
    Kind,
    Reason,
    Status,
    advance,
    apply_event,
    initial_state,
    next_deadline,
    reconfigure,
)
from heartfly.server import longlived
from heartfly.web import control
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME, Runtime
from tests.conftest import ConfigWriter, check, new_key
from tests.proc import Server
from tests.storeutil import query
from tests.test_hc_api import _path as hc_path
from tests.test_hc_api import made
from tests.test_hc_api import start as hc_start
from tests.webutil import Client, bearer, state_of

T0 = 1_780_000_000.0

pytestmark = pytest.mark.both_stores


def every_hour(name: str, key: str) -> str:
    return f'[checks.{name}]\nkey = "{key}"\nevery = "1h"\n'


def ping(url: str) -> int:
    async def fetch() -> int:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status

    return asyncio.run(fetch())


def test_a_sighup_reload_still_works_after_one_that_met_an_unusable_value(write_config: ConfigWriter) -> None:
    key_b = new_key()
    config = write_config(every_hour("a", new_key())).path
    with Server(config) as server:
        zone_folder = f'[checks.z]\nkey = "{new_key()}"\ncron = "@daily"\ntimezone = "Europe"\n'
        config.write_text(config.read_text() + zone_folder)
        server.signal(signal.SIGHUP)
        assert server.wait_for_log('checks.z.timezone: unknown time zone "Europe"')
        write_config(every_hour("a", new_key()) + every_hour("b", key_b))  # the same file, rewritten
        server.signal(signal.SIGHUP)
        assert server.wait_for_log("reloaded"), server.log()
        assert ping(f"{server.url}/ping/{key_b}") == 200
        assert server.stop() == 0
    assert "Traceback" not in server.log()


async def soon(condition: Callable[[], bool]) -> None:
    """Waits (at most 5 s) until `condition` holds."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


def fail_once(real: Any, error: Exception) -> Any:
    """`real`, except that its first call raises `error`: a bug no test foresaw."""
    calls: list[None] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    return wrapper


async def test_an_unexpected_error_while_reading_the_file_is_a_refused_reload_not_a_500(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(every_hour("a", new_key()))
    client: Client = await aiohttp_client(create_app(config))
    monkeypatch.setattr(control, "load_config", fail_once(load_config, RuntimeError("boom")))
    refused = await client.post("/api/v1/reload", headers=bearer(config))
    assert refused.status == 400
    assert (await refused.json())["problems"] == [f"{config.path}: cannot load it: RuntimeError: boom"]
    config.path.write_text(config.path.read_text() + every_hour("b", new_key()))
    again = await client.post("/api/v1/reload", headers=bearer(config))
    assert again.status == 200 and (await again.json())["checks"] == 2


async def test_the_garbage_collector_stays_on_while_a_reload_reads_the_file_in_its_thread(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(every_hour("a", new_key()))
    client: Client = await aiohttp_client(create_app(config))
    monkeypatch.setattr(longlived, "_tuned", True)  # as `heartfly serve` runs: building() switches the GC off
    seen: list[bool] = []

    def load(path: Path, cache_dir: Path | None) -> Config:
        seen.append(gc.isenabled())  # the read may take seconds, with pings served meanwhile
        return load_config(path, cache_dir)

    monkeypatch.setattr(control, "load_config", load)
    try:
        answer = await client.post("/api/v1/reload", headers=bearer(config))
        assert answer.status == 200
    finally:
        gc.unfreeze()
    assert seen == [True] and gc.isenabled()


async def test_the_sighup_loop_survives_any_error_says_ready_and_serves_the_next_sighup(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from heartfly.server import daemon as server
    from heartfly.server import systemd

    config = write_config(every_hour("a", new_key()))
    client: Client = await aiohttp_client(create_app(config))
    app = client.app
    said: list[str] = []

    def ready(status: str) -> bool:
        said.append(status)
        return True

    monkeypatch.setattr(systemd, "ready", ready)
    monkeypatch.setattr(control, "reload_config", fail_once(control.reload_config, KeyError("boom")))
    sighups: asyncio.Queue[None] = asyncio.Queue()
    loop = asyncio.create_task(server._reload_loop(app, sighups))
    try:
        sighups.put_nowait(None)
        await soon(lambda: bool(said))
        assert said == ["reload failed, still running the previous config: KeyError: 'boom'"]
        config.path.write_text(config.path.read_text() + every_hour("b", new_key()))
        sighups.put_nowait(None)
        await soon(lambda: len(said) == 2 or loop.done())
        assert not loop.done(), loop
        assert said[-1].endswith("with 2 checks (reloaded)") and len(app[RUNTIME].config.checks) == 2
    finally:
        loop.cancel()


async def test_pings_are_answered_while_a_reload_reads_and_validates_the_file(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    config = write_config(every_hour("a", key))
    client: Client = await aiohttp_client(create_app(config))
    reading, answered = threading.Event(), threading.Event()
    seen: list[bool] = []

    def slow_load(path: Path, cache_dir: Path | None) -> Config:  # a file of 100k checks takes seconds to validate
        reading.set()
        seen.append(answered.wait(5))  # on the event loop's thread this waits out the 5 s
        return load_config(path, cache_dir)

    monkeypatch.setattr(control, "load_config", slow_load)
    reload = asyncio.create_task(client.post("/api/v1/reload", headers=bearer(config)))
    await soon(reading.is_set)
    assert (await client.get(f"/ping/{key}")).status == 200
    answered.set()
    assert (await reload).status == 200
    assert seen == [True]  # the ping was answered while the file was being read


async def test_a_reload_that_moves_a_late_checks_due_time_ahead_makes_it_on_time_without_an_alert(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    hook = '[defaults]\nchannels = ["hook"]\n[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
    config = write_config(hook + '[checks.a]\nkey = "' + new_key() + '"\nevery = "1h"\ngrace = "1h"\n')
    clock = FakeClock()
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    client.app[RUNTIME].engine.fire_due(clock.advance(3601))
    assert (await state_of(client, config, "a"))["state"] == "late"
    config.path.write_text(config.path.read_text().replace('every = "1h"', 'every = "2h"'))
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    assert (await state_of(client, config, "a"))["state"] == "new"
    flips = await (await client.get("/api/v1/checks/a/flips", headers=bearer(config))).json()
    assert [(f["old"], f["new"]) for f in flips] == [("late", "new"), ("new", "late")]
    assert query(config, "SELECT count(*) FROM outbox") == [(0,)]


async def test_many_checks_gone_or_back_at_once_are_one_log_line_and_a_handful_one_line_each(
    aiohttp_client: Any, write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    many = "".join(every_hour(f"m{i:02d}", new_key()) for i in range(12))
    few = every_hour("f1", new_key()) + every_hour("f2", new_key())
    keep = every_hour("keep", new_key())
    config = write_config(keep + many + few)
    client: Client = await aiohttp_client(create_app(config))
    caplog.set_level("INFO", logger="heartfly.server.engine")

    async def reload(body: str) -> list[str]:
        write_config(body)
        caplog.clear()
        assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
        return [r.getMessage() for r in caplog.records if r.name == "heartfly.server.engine"]

    shown = "m00, m01, m02, m03, m04, m05, m06, m07, m08, m09, ..."
    assert await reload(keep + few) == [f"12 checks were removed from the config ({shown}); their history is kept"]
    assert await reload(keep) == [
        "check f1 was removed from the config; its history is kept",
        "check f2 was removed from the config; its history is kept",
    ]
    back = await reload(keep + many + few)
    assert back[0] == f"14 checks are back in the config ({shown}); watching them afresh, with their history"
    assert len(back) == 1 or all("replayed" in line for line in back[1:])


async def test_a_refused_reload_keeps_the_api_token_in_use(aiohttp_client: Any, write_config: ConfigWriter) -> None:
    # The file names a new token and adds a check that clashes with one made through the API:
    # "still running the previous config" must hold for the token too.
    client, key, _ = await hc_start(aiohttp_client, write_config)
    await made(client, key, slug="nightly", timeout=3600)
    path = hc_path(client)
    old_token = (path.parent / "api-token").read_text().strip()
    (path.parent / "new-token").write_text("N" * 43 + "\n")
    text = path.read_text().replace('api_token_file = "api-token"', 'api_token_file = "new-token"')
    path.write_text(text + f'\n[checks.nightly]\nkey = "{new_key()}"\nevery = "1d"\n')
    count, problems = await control.reload_config(client.app)
    assert count == 0 and problems
    old = await client.get("/api/v1/checks", headers={"Authorization": f"Bearer {old_token}"})
    new = await client.get("/api/v1/checks", headers={"Authorization": "Bearer " + "N" * 43})
    assert (old.status, new.status) == (200, 401)


async def test_a_reload_whose_database_read_fails_is_refused_whole(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    a, b = every_hour("a", new_key()), every_hour("b", new_key())
    config = write_config(a + b)
    await (await aiohttp_client(create_app(config))).close()
    config = write_config(a)  # b taken out while stopped: a returning check's pings are read back
    client = await aiohttp_client(create_app(config))
    rt = client.app[RUNTIME]

    async def locked(*args: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    rt.engine._db.check_pings_after = locked
    config.path.write_text(config.path.read_text() + b)
    answer = await client.post("/api/v1/reload", headers=bearer(config))
    assert answer.status == 400 and "database is locked" in (await answer.json())["problems"][0]
    assert list(rt.config.checks) == list(rt.engine.checks) == ["a"]  # not the server on b, the engine without


async def test_a_restart_after_a_reload_that_made_a_schedule_tighter_keeps_its_due_time(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\ngrace = "5m"\n')
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    assert (await client.get(f"/ping/{key}")).status == 200
    clock.advance(40 * 60)
    config.path.write_text(config.path.read_text().replace('every = "1h"', 'every = "30m"'))
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    clock.advance(30 * 60 + 60)  # a minute into the grace of the first run the new schedule expects
    client.app[RUNTIME].engine.fire_due(clock.now())
    assert (await state_of(client, config, "a"))["state"] == "late"
    await client.close()
    config = load_config(config.path)
    client = await aiohttp_client(create_app(config, clock=clock))  # restarted, the same file
    client.app[RUNTIME].engine.fire_due(clock.now())
    assert (await state_of(client, config, "a"))["state"] == "late"  # was: down (missed) at once


@pytest.mark.parametrize(
    ("before", "after", "ping", "wait"),
    [
        ('grace = "1h"', 'grace = "10m"', "", 90 * 60),  # late for 30 min: down at 1h10 under the new grace
        ('max_runtime = "2h"', 'max_runtime = "30m"', "/start", 50 * 60),  # running for 50 min: over at 30 min
    ],
)
async def test_a_reload_that_shortens_a_limit_takes_a_check_down_as_of_the_reload_not_for_the_past(
    aiohttp_client: Any, write_config: ConfigWriter, before: str, after: str, ping: str, wait: float
) -> None:
    # The check went down as of the new limit's instant, before the reload, when the running config
    # still waited for it: its flip and alert said it was down since a time it was not.
    hook = '[defaults]\nchannels = ["hook"]\n[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
    key = new_key()
    config = write_config(hook + f'[checks.a]\nkey = "{key}"\nevery = "1h"\n{before}\n')
    clock = FakeClock()
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    assert (await client.get(f"/ping/{key}{ping}")).status == 200
    engine = client.app[RUNTIME].engine
    engine.fire_due(clock.advance(wait))
    # This call is the timer here, and marks itself alive as the timer does (every second): a timer
    # silent for the whole wait is a frozen process's, whose thaw moves the deadlines due in the 5 s
    # after it to their end (the reload's too), after the pings that waited at its door.
    engine.timer_alive.mark(clock.now())
    assert (await state_of(client, config, "a"))["state"] != "down"
    reloaded_at = clock.now()
    config.path.write_text(config.path.read_text().replace(before, after))
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    client.app[RUNTIME].engine.fire_due(clock.advance(1))
    assert (await state_of(client, config, "a"))["state"] == "down"
    await client.app[RUNTIME].engine.writer.flush()
    [(at,)] = query(config, "SELECT at FROM flips WHERE new = 'down'")
    assert at == reloaded_at
    [(payload,)] = query(config, "SELECT payload FROM outbox")
    assert json.loads(payload)["at"] == reloaded_at


async def test_a_reload_that_lowers_a_fan_ins_expect_to_the_successes_its_batch_has_completes_it(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A worker retired: expect 4 made 3 while a batch held 3 successes. The batch waited for a
    # fourth and was told "incomplete: 3 of 3 successes arrived" a grace later, a false alarm.
    hook = '[defaults]\nchannels = ["hook"]\n[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
    key = new_key()
    config = write_config(hook + f'[checks.a]\nkey = "{key}"\nevery = "1h"\ngrace = "10m"\nexpect = 4\n')
    clock = FakeClock()
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    for worker in ("w1", "w2", "w3"):
        assert (await client.get(f"/ping/{key}?rid=b1&member={worker}")).status == 200
    config.path.write_text(config.path.read_text().replace("expect = 4", "expect = 3"))
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    client.app[RUNTIME].engine.fire_due(clock.advance(11 * 60))
    assert (await state_of(client, config, "a"))["state"] == "up"
    await client.app[RUNTIME].engine.writer.flush()
    assert query(config, "SELECT run_id, outcome FROM runs") == [("b1", "success")]
    assert query(config, "SELECT count(*) FROM outbox") == [(0,)]


@pytest.mark.parametrize("by", ["a reload", "a restart"])
async def test_a_check_back_in_the_config_with_a_lowered_expect_is_no_silent_recovery(
    aiohttp_client: Any, write_config: ConfigWriter, by: str
) -> None:
    # Down, then two of three workers of the next batch, then taken out of the file; back with
    # expect 2. A check back is watched afresh, its open batches dropped (rewatch): completing one
    # on the way (reconfigure) took it up from down, its recovery and its run thrown away, unsaid.
    hook = '[defaults]\nchannels = ["hook"]\n[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
    key = new_key()
    checked = f'[checks.a]\nkey = "{key}"\nevery = "1h"\ngrace = "10m"\nexpect = 3\n'
    config = write_config(hook + checked + f'[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    client: Client = await aiohttp_client(create_app(config, clock=clock))
    assert (await client.get(f"/ping/{key}/fail?rid=b0&member=w1")).status == 200
    for worker in ("w1", "w2"):
        assert (await client.get(f"/ping/{key}?rid=b1&member={worker}")).status == 200
    text = config.path.read_text()
    config.path.write_text(text.replace(checked, ""))
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    config.path.write_text(text.replace("expect = 3", "expect = 2"))
    if by == "a reload":
        assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    else:
        await client.close()
        config = load_config(config.path)
        client = await aiohttp_client(create_app(config, clock=clock))
    await client.app[RUNTIME].engine.writer.flush()
    assert (await state_of(client, config, "a"))["state"] == "down"  # as a ping or an operator leaves it
    assert query(config, "SELECT event FROM outbox ORDER BY id") == [("down",)]
    assert query(config, "SELECT count(*) FROM runs WHERE outcome = 'success'") == [(0,)]


class SlowEngine:
    """An engine whose apply_config awaits a gate (its reads, its flush) before it switches, or
    (`fail`) fails there, before it changes anything (a database read that failed); or (`switch_then_fail`)
    switches, then fails."""

    def __init__(
        self, config: Config, gate: asyncio.Event | None = None, *, fail: bool = False, switch_then_fail: bool = False
    ) -> None:
        self.config, self.gate, self.fail, self.switch_then_fail = config, gate, fail, switch_then_fail

    async def apply_config(self, config: Config, renamed: object = None, fresh: object = ()) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise OSError("database is locked")
        self.config = config
        if self.switch_then_fail:
            raise RuntimeError("the flush failed after the switch")


async def reload_beside_a_new_term(
    write_config: ConfigWriter, make_first: Callable[[Config], SlowEngine], make_term: Callable[[Config], SlowEngine]
) -> tuple[asyncio.Task[Config], Runtime, SlowEngine, types.SimpleNamespace]:
    """A server on check a whose engine (`first`, gated) applies a file with a and b, and a cluster
    term beginning meanwhile, built as _begin_term builds it on the runtime's config, with its
    dispatcher; the reload task, once the first engine's gate opens."""
    old = write_config(every_hour("a", new_key()))
    rt = Runtime(config=old, clock=FakeClock())
    rt.file_config = old
    rt._engine = make_first(old)  # type: ignore[assignment]
    old.path.write_text(old.path.read_text() + every_hour("b", new_key()))
    reload = asyncio.create_task(rt.apply_config(load_config(old.path)))
    await asyncio.sleep(0)
    config = rt.config
    term = make_term(config)
    rt._engine = term  # type: ignore[assignment]
    dispatcher = types.SimpleNamespace(config=config)
    rt.dispatcher = dispatcher  # type: ignore[assignment]
    if rt.config is not config:
        await term.apply_config(rt.config)
    return reload, rt, term, dispatcher


async def test_a_cluster_term_that_begins_while_a_reload_applies_ends_on_the_new_config(
    write_config: ConfigWriter,
) -> None:
    # cluster._begin_term builds on rt.config and applies it again only if rt.config changed
    # meanwhile: rt.config must switch before the old engine's apply awaits, not after it.
    gate = asyncio.Event()
    reload, rt, term, _ = await reload_beside_a_new_term(write_config, lambda c: SlowEngine(c, gate), SlowEngine)
    gate.set()
    await reload
    assert "b" in rt.config.checks and "b" in term.config.checks


@pytest.mark.parametrize(
    ("term", "on_new"),
    [
        (lambda c: SlowEngine(c, fail=True), True),  # taking the old config back failed before it switched
        (lambda c: SlowEngine(c, switch_then_fail=True), False),  # ...or after
    ],
    ids=["kept-the-new", "took-the-old-back"],
)
async def test_a_reload_that_fails_and_cannot_be_taken_back_from_a_new_term_leaves_the_server_on_its_config(
    write_config: ConfigWriter, term: Callable[[Config], SlowEngine], on_new: bool
) -> None:
    # The term's dispatcher sends its engine's alerts: it must know that engine's checks (an alert
    # of a check it does not know is failed for good), and the server says what runs.
    gate = asyncio.Event()
    reload, rt, engine, dispatcher = await reload_beside_a_new_term(
        write_config, lambda c: SlowEngine(c, gate, fail=True), term
    )
    gate.set()
    with pytest.raises(OSError, match="database is locked"):
        await reload
    assert ("b" in engine.config.checks) is on_new
    assert dispatcher.config is engine.config and rt.config is engine.config


def test_a_reload_that_took_a_running_check_down_delays_none_of_its_later_deadlines() -> None:
    # A reload that shortened the stall limit of a run quiet past it took the check down at the
    # reload by adding the gap to the slack, which every deadline of the check carries until its
    # next due time is set: a cron job's success before its next tick sets none, and the next
    # day's missed run was told 1h20 late (and shown due then).
    day = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    old = check(cron="0 3 * * *", grace=1800, stall=2 * 3600)
    new = check(name=old.name, key=old.key, cron="0 3 * * *", grace=1800, stall=600)
    st = apply_event(old, initial_state(old, day), Event(Kind.START, day + 3 * 3600), day + 3 * 3600).state
    reloaded_at = day + 4.5 * 3600  # quiet for 1h30: past the new 10 min, within the old 2h
    st = advance(new, reconfigure(new, st, reloaded_at, old=old).state, reloaded_at).state
    assert (st.status, st.reason) == (Status.DOWN, Reason.STALLED)
    st = apply_event(new, st, Event(Kind.SUCCESS, reloaded_at + 600), reloaded_at + 600).state
    assert st.status is Status.UP
    tomorrow = day + 86400 + 3 * 3600
    assert st.next_due() == tomorrow
    assert next_deadline(new, st) == Deadline(tomorrow, DeadlineKind.LATE)
    assert advance(new, st, tomorrow + 1800).state.status is Status.DOWN


def test_a_reload_that_shortens_a_limit_keeps_a_deadline_held_for_a_back_dated_pings_window() -> None:
    # A spool's replay is under way (a back-dated ping came a second before the reload): a deadline
    # the reload leaves due waits for the reorder window, as it did before the change, and a
    # replayed success dated before the new limit keeps the check from going down at all.
    due = T0 + 3600
    old = check(every=3600, grace=3600)
    new = check(name=old.name, key=old.key, every=3600, grace=600)
    st = advance(old, initial_state(old, T0), due + 60).state
    assert st.status is Status.LATE
    reloaded_at = due + 1800  # late for 30 min: past the new 10 min grace, within the old hour
    st = apply_event(old, st, Event(Kind.LOG, due - 100), reloaded_at - 1).state
    st = reconfigure(new, st, reloaded_at, old=old).state
    assert advance(new, st, reloaded_at).state.status is Status.LATE  # held: the replay goes on
    st = apply_event(new, st, Event(Kind.SUCCESS, due + 300), reloaded_at + 2).state
    assert st.status is Status.UP
    assert advance(new, st, reloaded_at + 60).state.status is Status.UP


async def test_a_reload_that_changes_one_check_of_many_works_out_the_deadline_of_that_one_only(
    aiohttp_client: Any, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every check's next deadline was worked out again on the event loop, changed or not: a reload
    # of one grace among 50,000 checks held every ping for a second (100,000: two and a half).
    config = write_config("".join(every_hour(f"c{i}", new_key()) for i in range(300)))
    client: Client = await aiohttp_client(create_app(config))
    engine = client.app[RUNTIME].engine
    await engine.all_read()
    worked_out: list[str] = []

    def counted(cfg: Any, st: Any) -> Deadline | None:
        worked_out.append(cfg.name)
        return next_deadline(cfg, st)

    monkeypatch.setattr("heartfly.core.states.next_deadline", counted)
    text = config.path.read_text()
    config.path.write_text(text.replace("[checks.c7]\n", '[checks.c7]\ngrace = "7m"\n'))
    assert (await client.post("/api/v1/reload", headers=bearer(config))).status == 200
    assert set(worked_out) == {"c7"}
    assert engine.checks["c7"].config.grace == 420


async def test_a_reload_that_changes_one_check_leaves_the_others_deadlines_to_fire_on_time(
    write_config: ConfigWriter,
) -> None:
    # The checks a reload leaves as they were keep their heap entries, not worked out again: those
    # still fire at their deadlines, and the one changed at its new one.
    from tests.test_restart import ping, running

    text = "".join(f'[checks.{n}]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n' for n in ("a", "b", "c"))
    config = write_config(text)
    clock = FakeClock()
    async with running(config, clock) as engine:
        for name in ("a", "b", "c"):
            await ping(engine, name)
        clock.advance(50)
        await engine.apply_config(
            load_config(write_config(text.replace('grace = "0s"\n[checks.c]', 'grace = "20s"\n[checks.c]')).path)
        )
        assert engine.checks["b"].config.grace == 20
        clock.advance(50.5)
        engine.fire_due(clock.now())
        assert {n: c.state.status for n, c in engine.checks.items()} == {
            "a": Status.DOWN,
            "b": Status.LATE,
            "c": Status.DOWN,
        }
        clock.advance(20)
        engine.fire_due(clock.now())
        assert engine.checks["b"].state.status is Status.DOWN
