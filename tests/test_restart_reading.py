"""A restart answers before it reads the stored states: each check's is read when it is first
used, the rest in the background (Engine.finish_load, the timer's first work) before any deadline
is judged, and each is brought to the restart as an eager load would have brought it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from heartfly.core import states
from heartfly.core.clock import FakeClock
from heartfly.core.config import Config
from heartfly.core.states import Status
from heartfly.server.checks import Check
from heartfly.server.downtime import UNREAD_DOWNTIMES
from heartfly.server.engine import Engine
from heartfly.store import rows as store
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query
from tests.test_restart import ping, running, stopped_after_a_ping

pytestmark = pytest.mark.both_stores


def stored_state(config: Config, name: str) -> states.CheckState:
    (text,) = query(config, "SELECT state FROM checks WHERE name = ?", (name,))[0]
    return store.decode_state(text)


def unread_downtimes(config: Config) -> list[list[float]]:
    rows = query(config, "SELECT value FROM meta WHERE key = ?", (UNREAD_DOWNTIMES,))
    return json.loads(rows[0][0]) if rows else []


def alive_at(config: Config) -> float:
    (value,) = query(config, "SELECT value FROM meta WHERE key = ?", (store.ALIVE_AT,))[0]
    return float(value)


async def pinged_then_stopped(config: Config, clock: FakeClock, up: float, down: float) -> float:
    """Every check pinged at the start of a run `up` seconds long, then a stop of `down` seconds
    (clean); returns when the pings were."""
    begun = clock.now()
    async with running(config, clock) as engine:
        for name in engine.checks:
            await ping(engine, name)
        clock.advance(up)
    clock.advance(down)
    return begun


async def read_all(engine: Engine) -> None:
    await engine.finish_load(lambda: None)
    await engine.writer.flush()


async def test_a_restart_reads_a_stored_state_when_it_is_first_used_and_the_rest_in_the_background(
    write_config: ConfigWriter,
) -> None:
    config = write_config("".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "100s"\n' for i in range(3)))
    clock = FakeClock()
    await pinged_then_stopped(config, clock, 10, 5)
    async with running(config, clock) as engine:
        assert not any(check.loaded for check in engine.checks.values()) and engine.reading_stored
        await ping(engine, "c0")  # read first, then the ping applied to what it read
        c0 = engine.checks["c0"]
        assert c0.loaded and c0.state.last_ping_at == clock.now() and c0.state.status is Status.UP
        assert not engine.checks["c1"].loaded
        await read_all(engine)
        assert all(check.loaded for check in engine.checks.values()) and not engine.reading_stored
        for name in ("c1", "c2"):  # each scheduled by its deadline as it was read (c0's moved on since)
            check = engine.checks[name]
            deadline = states.next_deadline(check.config, check.state)
            assert deadline is not None and check.heap_at == states.fire_time(check.state, deadline)
        assert engine.checks["c1"].state.last_ping_at == clock.now() - 15


async def test_a_state_read_after_the_load_gets_the_restarts_downtime_and_is_stored_at_once(
    write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    config, clock, begun = await stopped_after_a_ping(write_config, 50, 100)  # due at +100, down +50 to +150
    caplog.set_level("INFO", logger="heartfly.server.engine")
    async with running(config, clock) as engine:
        assert "that fell in that time" not in caplog.text  # said once every state is read
        await read_all(engine)
        assert "1 deadline(s) that fell in that time were extended" in caplog.text
        assert engine.checks["a"].state.slack == 100
        assert stored_state(config, "a").slack == 100  # at once, not at a checkpoint half a minute on
        assert engine.fire_due(begun + 199.9) == 0
        assert engine.fire_due(begun + 200) == 1 and engine.checks["a"].state.status is Status.DOWN


@pytest.mark.parametrize("clean", [True, False])
async def test_a_downtime_not_applied_to_every_state_yet_is_kept_for_the_next_start(
    write_config: ConfigWriter, clean: bool
) -> None:
    config, clock, begun = await stopped_after_a_ping(write_config, 50, 100)  # down from +50 to +150
    async with running(config, clock, clean=clean) as engine:
        await engine.writer.flush()
        # Alive from here on, as the server answers; the downtime waits for the states not read.
        assert alive_at(config) == begun + 150 and not engine.checks["a"].loaded
        assert unread_downtimes(config) == [[begun + 50, begun + 150, begun + 160]]
        if not clean:
            await read_all(engine)
            assert unread_downtimes(config) == [] and stored_state(config, "a").slack == 100
    # A clean stop reads what is unread first: the extension is stored, the downtime done with.
    assert unread_downtimes(config) == [] and stored_state(config, "a").slack == 100


async def test_a_crash_while_states_are_read_counts_no_downtime_twice(write_config: ConfigWriter) -> None:
    config = write_config("".join(f'[checks.{n}]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n' for n in "ab"))
    clock = FakeClock()
    begun = await pinged_then_stopped(config, clock, 50, 100)  # down from +50 to +150: both due at +100, inside
    async with running(config, clock, clean=False) as engine:
        assert engine.checks["a"].state.slack == 100  # read, extended to +200 and stored at once
        await engine.writer.flush()
        clock.advance(1)  # the process dies with b unread: its downtime kept for the next start
    assert unread_downtimes(config) == [[begun + 50, begun + 150, begun + 160]]
    assert alive_at(config) == begun + 150 and stored_state(config, "a").slack == 100
    clock.advance(59)
    async with running(config, clock) as engine:
        # Down from +150 to +210, and from +50 to +150 for the states the start before did not
        # extend: b's deadline moves by both, a's (extended to +200 once) only by the second.
        await read_all(engine)
        assert engine.checks["a"].state.slack == engine.checks["b"].state.slack == 160
        assert engine.fire_due(begun + 259.9) == 0
        assert engine.fire_due(begun + 260) == 2


async def test_a_start_that_dies_while_reading_leaves_the_next_its_own_downtime_not_the_one_before(
    write_config: ConfigWriter,
) -> None:
    config = write_config(
        f'[checks.c]\nkey = "{new_key()}"\nevery = "1000s"\ngrace = "0s"\n'
        f'[checks.u]\nkey = "{new_key()}"\nevery = "100000s"\ngrace = "0s"\n'
    )
    clock = FakeClock()
    begun = await pinged_then_stopped(config, clock, 50, 300)  # down from +50 to +350: c's deadline (+1000) not in it
    async with running(config, clock, clean=False) as engine:
        clock.advance(1)
        await ping(engine, "c")  # due at +1351, set while the server answered
        await engine.writer.flush()
        clock.advance(1)  # it dies with u unread
    clock.advance(1048)
    async with running(config, clock) as engine:  # at +1400: down since +350, the last alive mark
        await read_all(engine)
        assert engine.checks["c"].state.slack == 1050  # not 1350: from +50, the downtime before too
        assert engine.fire_due(begun + 2400.9) == 0 and engine.fire_due(begun + 2401) == 1


async def test_a_check_whose_state_fails_to_load_is_watched_afresh_and_its_row_kept_for_the_next_start(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug or a lack of memory, not a damaged row: the check is not left unread, which would give
    # it no deadline, and its stored state is not written over, so a start without the fault reads it.
    config = write_config("".join(f'[checks.{n}]\nkey = "{new_key()}"\nevery = "1h"\ngrace = "0s"\n' for n in "abc"))
    clock = FakeClock()
    async with running(config, clock) as engine:
        for n in "abc":
            await ping(engine, n)
        clock.advance(3600 + 60)
        engine.fire_due(clock.now())
        await engine.writer.flush()
    clock.advance(10)
    real = Engine._bring_to_load

    def failing(self: Engine, check: Check, decoded: states.CheckState | None, **kw: Any) -> states.CheckState:
        if check.name == "b":
            raise MemoryError
        return real(self, check, decoded, **kw)

    monkeypatch.setattr(Engine, "_bring_to_load", failing)
    async with running(config, clock) as engine:
        await read_all(engine)
        assert engine.checks["b"].heap_at is not None  # (a and c, down, have none: no repeat)
        assert "check b: its stored state cannot be brought to this start; watching it afresh" in caplog.text
        assert engine.checks["a"].state.status is Status.DOWN and engine.checks["b"].state.status is Status.NEW
        assert engine.checks["b"].state.due_at == engine.started_at + 3600  # from this start
    kept = stored_state(config, "b")  # after the stop, which stores what changed
    assert kept.status is Status.DOWN and kept.last_ping_at is not None
    monkeypatch.setattr(Engine, "_bring_to_load", real)
    clock.advance(10)
    async with running(config, clock) as engine:
        await read_all(engine)
        assert engine.checks["b"].state.status is Status.DOWN


@pytest.mark.parametrize(
    "damage",
    ['{"status": "up", "changed_at": ', '{"status": "up", "runs": 5}', '["up"]'],
    ids=["cut short", "a wrong shape", "no object"],
)
async def test_a_stored_state_that_cannot_be_read_is_logged_and_its_check_watched_afresh(
    write_config: ConfigWriter, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    clock = FakeClock()
    await pinged_then_stopped(config, clock, 0, 0)
    query(config, "UPDATE checks SET state = ? WHERE name = ?", (damage, "a"))
    clock.advance(60)
    caplog.set_level("INFO", logger="heartfly.server.engine")
    async with running(config, clock) as engine:
        await read_all(engine)
        a, b = engine.checks["a"].state, engine.checks["b"].state
        assert a.status is Status.NEW and a.watched_from == clock.now() and b.status is Status.UP
        assert "check a: its stored state cannot be read" in caplog.text and repr(damage) in caplog.text
        assert engine.checks["b"].heap_at is not None  # read, and scheduled, after it
        assert stored_state(config, "a") == a  # stored afresh: the next start reads it
    async with running(config, clock) as engine:
        await read_all(engine)
        assert engine.checks["a"].state.status is Status.NEW


async def test_two_config_changes_at_once_while_the_states_are_read_end_on_the_newer(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cluster's new term applies the config without the reload lock, and a reload may come at
    # once: each waits for the stored states to be read before it rebuilds the maps.
    checks = "".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "100s"\n' for i in range(3))
    config = write_config(checks)
    clock = FakeClock()
    await pinged_then_stopped(config, clock, 10, 5)
    alpha, beta = (f'[checks.{name}]\nkey = "{new_key()}"\nevery = "100s"\n' for name in ("alpha", "beta"))
    older, newer = write_config(checks + alpha), write_config(checks + alpha + beta)
    async with running(config, clock) as engine:
        assert engine.reading_stored
        real, calls, go = engine.finish_load, [], asyncio.Event()

        async def first_waits(after: Any) -> None:
            calls.append(after)
            if len(calls) == 1:
                await go.wait()
            await real(after)

        monkeypatch.setattr(engine, "finish_load", first_waits)
        first = asyncio.create_task(engine.apply_config(older))
        await asyncio.sleep(0)  # now reading the states
        second = asyncio.create_task(engine.apply_config(newer))
        await asyncio.sleep(0.01)
        go.set()
        await asyncio.gather(first, second)
        assert engine.config is newer and engine.checks.keys() == {"c0", "c1", "c2", "alpha", "beta"}
