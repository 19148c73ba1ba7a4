"""Restarts: everything is rebuilt from the database (SQLite and PostgreSQL), and Heartfly's own
downtime is accounted for."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from heartfly.cli.report import read_status
from heartfly.core import states
from heartfly.core.clock import FakeClock
from heartfly.core.config import CheckConfig, Config
from heartfly.core.pingparse import parse_query
from heartfly.core.states import CheckState, Deadline, Event, Kind, Status
from heartfly.core.views import check_summary, iso
from heartfly.server import housekeeping
from heartfly.server.engine import CHECKPOINT_AFTER, RETRY_BROKEN_CHECK, Engine, PingRecord
from heartfly.store import backend, inbox
from heartfly.store import rows as store
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query

pytestmark = pytest.mark.both_stores


@asynccontextmanager
async def running(
    config: Config, clock: FakeClock, *, clean: bool = True, serving_since: float | None = None
) -> AsyncIterator[Engine]:
    """An engine on a real database, stopped cleanly or as if the process died (`serving_since`:
    a cluster node's, taking the lead)."""
    opened = await backend.open_backend(config.server)
    opened.writer.start()
    try:
        engine = Engine(config, clock, opened.writer)
        await engine.load(opened.reader, serving_since=serving_since)
        yield engine
        await opened.writer.flush()
        if clean:
            await housekeeping.mark_stopped(engine)
    finally:
        await opened.close()


async def ping(engine: Engine, name: str, kind: Kind = Kind.SUCCESS, at: float | None = None) -> None:
    """A ping arriving now, as of `at` (now if None: a ping without ts)."""
    now = engine.clock.now()
    await engine.record(engine.checks[name], PingRecord(Event(kind, now if at is None else at), received_at=now))


async def alive(engine: Engine) -> None:
    await engine.writer.submit(store.Write(statements=[store.meta_statement("alive_at", repr(engine.clock.now()))]))


def status(engine: Engine, name: str) -> Status:
    return engine.checks[name].state.status


def run_timer(engine: Engine, clock: FakeClock, seconds: float) -> None:
    """The timer, as it runs, for `seconds` (a round every 0.1 s)."""
    for _ in range(round(seconds * 10)):
        engine.fire_due(clock.now())
        clock.advance(0.1)


async def a_progress_held_then_a_stop(config: Config, clock: FakeClock, *, clean: bool, older: bool) -> None:
    """stall 2 s: a start replayed 2.8 s late (its stall, at -0.8, held for the window), the newest
    progress, live at +0.05, held behind it, and (`older`) the progress from -1.5 at +0.15 (inside
    the limit); the last alive mark at +0.8 and a stop at +1."""
    t0 = clock.now()
    async with running(config, clock, clean=clean) as engine:
        await ping(engine, "a", Kind.START, at=t0 - 2.8)
        clock.advance(0.05)
        await ping(engine, "a", Kind.PROGRESS)
        clock.advance(0.1)
        if older:
            await ping(engine, "a", Kind.PROGRESS, at=t0 - 1.5)
        assert engine.checks["a"].state.waiting
        clock.advance(0.65)
        await alive(engine)
        clock.advance(0.2)


async def a_success_held_then_a_stop(config: Config, clock: FakeClock, *, clean: bool) -> None:
    """min_runtime: a run from -10 whose success at 0 waits for a start that may be on its way;
    the last alive mark at +0.8 and a stop at +1."""
    t0 = clock.now()
    async with running(config, clock, clean=clean) as engine:
        await ping(engine, "a", Kind.START, at=t0 - 10)
        await ping(engine, "a")
        assert engine.checks["a"].state.waiting
        clock.advance(0.8)
        await alive(engine)
        clock.advance(0.2)


def flips(config: Config) -> list[tuple[str, str, str | None]]:
    return query(config, "SELECT old, new, reason FROM flips ORDER BY id")


async def test_states_and_pings_survive_a_restart(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a", Kind.START)
        before = engine.checks["a"].state
    clock.advance(10)
    async with running(config, clock) as engine:
        after = engine.checks["a"].state
        assert after.status is Status.RUNNING and after.runs == before.runs
        assert after.last_ping_at == before.last_ping_at


async def test_a_deadline_that_fell_inside_the_downtime_is_extended_by_it(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a")  # due at +100
        clock.advance(50)
    clock.advance(100)  # stopped from +50 to +150: the deadline at +100 fell inside
    async with running(config, clock) as engine:
        assert engine.fire_due(clock.now()) == 0
        assert status(engine, "a") is Status.UP
        assert engine.downtime is not None and engine.downtime[1] - engine.downtime[0] == 100
        assert engine.fire_due(clock.now() + 49.9) == 0
        assert engine.fire_due(clock.now() + 50) == 1  # 100 s after the ping, counted without the downtime
        assert status(engine, "a") is Status.DOWN
    assert query(config, "SELECT started_at - stopped_at, clean FROM downtimes") == [(100.0, 1)]


async def test_a_miss_judged_late_for_a_downtime_says_so_and_tells_when_the_run_was_due(
    write_config: ConfigWriter,
) -> None:
    # Its alert said "Was due" at the extended deadline (a 03:00 job "was due" at 05:00 after two
    # hours down) and nothing of the downtime: as if Heartfly had noticed two hours late.
    body = '[defaults]\nchannels = ["journal"]\n\n[channels.journal]\ntype = "log"\n\n'
    config = write_config(body + f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a")
        due = clock.now() + 100
        clock.advance(50)
    clock.advance(100)  # stopped from +50 to +150: the deadline at +100 fell inside
    async with running(config, clock) as engine:
        assert engine.fire_due(clock.now() + 50) == 1
        await engine.writer.flush()
    [(detail,)] = query(config, "SELECT detail FROM flips WHERE new = 'down'")
    assert detail == "no ping arrived by the deadline, moved 1 min 40 s later by Heartfly's own downtime"
    [(payload,)] = query(config, "SELECT payload FROM outbox WHERE event = 'down'")
    assert json.loads(payload)["due_at"] == due


async def test_the_downtime_does_not_count_toward_a_pending_alerts_expiry_but_a_test_alerts_keeps_its_own(
    write_config: ConfigWriter,
) -> None:
    config = write_config(
        '[alerts]\nexpire_after = "1h"\n[channels.journal]\ntype = "log"\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1d"\nchannels = ["journal"]\n'
    )
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a", Kind.FAIL)  # down: its alert may be tried for an hour
        _, committed = engine.send_test_alert("journal")  # for five minutes
        await committed
        clock.advance(1800)  # killed before either could be sent, half an hour on
        await alive(engine)
    clock.advance(7200)  # not running for two hours: no alert could be sent meanwhile
    async with running(config, clock):
        pass
    left = query(config, "SELECT event, expires_at - ? FROM outbox ORDER BY id", (clock.now(),))
    assert left == [("down", 1800.0), ("test", 300.0 - 1800 - 7200)]


async def stopped_after_a_ping(write_config: ConfigWriter, up: float, down: float) -> tuple[Config, FakeClock, float]:
    """Check `a` (every 100 s, no grace) pinged at the start of a run `up` seconds long, then a
    stop of `down` seconds (clean); the config, the clock, and when the ping was (its due: +100)."""
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n')
    clock = FakeClock()
    begun = clock.now()
    async with running(config, clock) as engine:
        await ping(engine, "a")
        clock.advance(up)
    clock.advance(down)
    return config, clock, begun


@pytest.mark.parametrize("retried", [True, False])
async def test_a_deadline_just_after_a_restart_moves_past_the_retries_of_pings_sent_while_it_was_down(
    write_config: ConfigWriter, retried: bool
) -> None:
    # Stopped from +90 to +98: the deadline at +100 is after the restart, not inside.
    config, clock, begun = await stopped_after_a_ping(write_config, 90, 8)
    async with running(config, clock) as engine:
        # Moved to 1 s plus 1.5 times the 8 s downtime after the restart, 10 s at most: +108.
        assert engine.fire_due(begun + 100) == 0 and engine.downtime is not None
        if retried:  # the job's success at +93 met the stopped server; its retry (+0.5, +1, +2, +4 s) at +100.5
            clock.advance(2.5)
            await ping(engine, "a")
            assert engine.fire_due(begun + 112) == 0 and status(engine, "a") is Status.UP
        else:
            assert engine.fire_due(begun + 107.9) == 0
            assert engine.fire_due(begun + 108) == 1 and status(engine, "a") is Status.DOWN
    downs = query(config, "SELECT at, reason FROM flips WHERE new = 'down'")
    assert downs == ([] if retried else [(begun + 108, "missed")])  # dated by the moved deadline, as an extended one


@pytest.mark.parametrize("first", ["log ping", "spooled batch"])
async def test_another_ping_in_the_settle_does_not_fire_the_moved_deadline_before_the_retried_one_arrives(
    write_config: ConfigWriter, first: str
) -> None:
    config, clock, begun = await stopped_after_a_ping(write_config, 90, 8)  # the deadline moves to +108
    async with running(config, clock) as engine:
        clock.advance(2.2)  # +100.2, past the deadline's first instant
        job = engine.checks["a"]
        if first == "log ping":
            await ping(engine, "a", Kind.LOG)
        else:
            done, _ = engine.record_batch(job, [PingRecord(Event(Kind.LOG, begun + 50), received_at=clock.now())])
            await done
        assert status(engine, "a") is Status.UP
        clock.advance(0.3)
        await ping(engine, "a")  # the retried success
        assert engine.fire_due(begun + 112) == 0 and status(engine, "a") is Status.UP
    assert query(config, "SELECT at FROM flips WHERE new = 'down'") == []


async def test_fan_in_workers_retried_into_the_settle_complete_their_run_with_no_false_alarm(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.f]\nkey = "{new_key()}"\nevery = "1h"\nexpect = 3\nmax_runtime = "60s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        begun = clock.now()
        start = PingRecord(Event(Kind.START, begun, run_id="b1"), received_at=begun)
        await engine.record(engine.checks["f"], start)  # complete by +60, or incomplete
        clock.advance(55)
    clock.advance(3)  # stopped from +55 to +58, while the workers ended: the deadline moves to +63.5
    async with running(config, clock) as engine:
        for at in (59.0, 60.3, 61.0):  # their successes, retried in (the second after +60)
            clock.advance(at - (clock.now() - begun))
            success = Event(Kind.SUCCESS, clock.now(), run_id="b1", member=f"w{at}")
            await engine.record(engine.checks["f"], PingRecord(success, received_at=clock.now()))
        assert engine.fire_due(begun + 70) == 0 and status(engine, "f") is Status.UP
    assert query(config, "SELECT outcome FROM runs") == [("success",)]


async def record(engine: Engine, name: str, kind: Kind, run_id: str) -> None:
    now = engine.clock.now()
    await engine.record(engine.checks[name], PingRecord(Event(kind, now, run_id), received_at=now))


async def test_a_second_run_starting_after_a_restart_leaves_the_first_runs_extended_overrun_alone(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.job]\nkey = "{new_key()}"\nevery = "120s"\nmax_runtime = "90s"\n')
    clock = FakeClock()
    begun = clock.now()
    async with running(config, clock) as engine:
        await record(engine, "job", Kind.START, "r1")  # overrun at +90
        clock.advance(85)
    clock.advance(10)  # stopped from +85 to +95: the overrun moves past the restart
    async with running(config, clock) as engine:
        clock.advance(1)
        await record(engine, "job", Kind.START, "r2")  # a new due time: it used to drop the extension
        assert engine.fire_due(clock.now()) == 0 and status(engine, "job") is Status.RUNNING  # r1 not overrun
        clock.advance(2)
        await record(engine, "job", Kind.SUCCESS, "r1")  # r1's end, retried in
        assert engine.fire_due(begun + 110) == 0
    assert query(config, "SELECT at FROM flips WHERE new = 'down'") == []


async def test_a_step_armed_again_after_a_restart_leaves_its_open_runs_extended_overrun_alone(
    write_config: ConfigWriter,
) -> None:
    config = write_config(
        f'[checks.up]\nkey = "{new_key()}"\nevery = "1h"\n'
        f'[checks.step]\nkey = "{new_key()}"\nafter = "up"\nwithin = "600s"\nmax_runtime = "60s"\n'
    )
    clock = FakeClock()
    begun = clock.now()
    async with running(config, clock) as engine:
        await ping(engine, "up", Kind.START)  # arms the step
        for kind, rid in ((Kind.START, "r1"), (Kind.START, "r2"), (Kind.SUCCESS, "r1")):
            clock.advance(1)
            await record(engine, "step", kind, rid)  # the step done; r2 open, its overrun at +62
        clock.advance(47)
    clock.advance(20)  # stopped from +50 to +70: the overrun moves to +82
    async with running(config, clock) as engine:
        clock.advance(1)
        await ping(engine, "up", Kind.START)  # arms the step again: it used to drop the extension
        assert engine.fire_due(clock.now()) == 0 and status(engine, "step") is not Status.DOWN
        clock.advance(1)
        await record(engine, "step", Kind.SUCCESS, "r2")
        assert engine.fire_due(begun + 90) == 0
    assert query(config, "SELECT at FROM flips WHERE new = 'down'") == []


async def test_a_run_that_never_ends_does_not_keep_a_restarts_extension_on_the_deadlines_after_it(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n')
    clock = FakeClock()
    begun = clock.now()
    async with running(config, clock) as engine:
        await ping(engine, "a")  # due at +100
        clock.advance(1)
        await record(engine, "a", Kind.START, "killed")  # a job killed mid-run: its end never comes
        clock.advance(49)
    clock.advance(100)  # stopped from +50 to +150: the deadline moves to +200
    async with running(config, clock) as engine:
        clock.advance(10)
        await record(engine, "a", Kind.START, "r2")
        await record(engine, "a", Kind.SUCCESS, "r2")  # +160: due at +260, the downtime long over
        assert engine.checks["a"].state.slack == 0
        assert engine.fire_due(begun + 259.9) == 0
        assert engine.fire_due(begun + 260) == 1 and status(engine, "a") is Status.DOWN


async def test_a_run_started_after_a_restart_is_not_given_the_downtime_before_it(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\nmax_runtime = "20s"\n')
    clock = FakeClock()
    begun = clock.now()
    async with running(config, clock) as engine:
        await ping(engine, "a")  # due at +100
        clock.advance(50)
    clock.advance(100)  # stopped from +50 to +150: the deadline moves to +200
    async with running(config, clock) as engine:
        clock.advance(5)
        await record(engine, "a", Kind.START, "r1")  # +155, and it hangs: overrun at +175
        assert engine.fire_due(begun + 174.9) == 0
        assert engine.fire_due(begun + 175) == 1 and status(engine, "a") is Status.DOWN


async def test_a_pipeline_step_armed_anew_has_no_slack_from_an_earlier_restart(write_config: ConfigWriter) -> None:
    config = write_config(
        f'[checks.up]\nkey = "{new_key()}"\nevery = "1h"\n'
        f'[checks.step]\nkey = "{new_key()}"\nafter = "up"\nwithin = "60s"\n'
    )
    clock = FakeClock()
    begun = clock.now()
    async with running(config, clock) as engine:
        await ping(engine, "up", Kind.START)  # the step is due by +60
        clock.advance(50)
    clock.advance(100)  # stopped from +50 to +150: the step's deadline moves to +160
    async with running(config, clock) as engine:
        assert engine.checks["step"].state.slack == 100
        clock.advance(5)
        await ping(engine, "step")  # +155: done
        clock.advance(40)
    clock.advance(5)  # stopped from +195 to +200 (nothing of the step's inside)
    async with running(config, clock) as engine:
        await ping(engine, "up", Kind.START)  # +200: armed again, due by +260, not +360
        assert engine.fire_due(begun + 259.9) == 0
        assert engine.fire_due(begun + 260) == 1 and status(engine, "step") is Status.DOWN


@pytest.mark.parametrize(("serving", "settled"), [(0.5, False), (5.0, True)])
async def test_a_node_taking_the_lead_settles_only_after_a_real_gap_without_one_taking_pings(
    write_config: ConfigWriter, serving: float, settled: bool
) -> None:
    # The old leader's last alive mark at +90; this node took pings from +90.5 (the mark comes up
    # to a second before a stop: no gap in truth) or from +95 (a gap: all nodes were down).
    config, clock, begun = await stopped_after_a_ping(write_config, 90, 8)
    async with running(config, clock, serving_since=begun + 90 + serving) as engine:
        assert engine.fire_due(begun + 100) == (0 if settled else 1)


async def test_a_deadline_long_after_a_restart_or_before_the_stop_fires_on_its_own_time(
    write_config: ConfigWriter,
) -> None:
    config = write_config(
        f'[checks.early]\nkey = "{new_key()}"\nevery = "80s"\ngrace = "0s"\n'
        f'[checks.late]\nkey = "{new_key()}"\nevery = "120s"\ngrace = "0s"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "early")
        await ping(engine, "late")
        clock.advance(90)
        begun = clock.now() - 90
    clock.advance(5)  # stopped from +90 to +95: early's deadline (+80) came before it, late's (+120) long after
    async with running(config, clock) as engine:
        assert engine.fire_due(clock.now()) == 1 and status(engine, "early") is Status.DOWN  # at once, as before
        assert engine.fire_due(begun + 119.9) == 0
        assert engine.fire_due(begun + 120) == 1 and status(engine, "late") is Status.DOWN


@pytest.mark.parametrize("clean", [True, False])
async def test_a_second_restart_keeps_the_extension_the_first_gave_a_deadline(
    write_config: ConfigWriter, clean: bool
) -> None:
    config, clock, _ = await stopped_after_a_ping(write_config, 50, 100)  # from +50 to +150: due at +200
    async with running(config, clock, clean=clean) as engine:
        await engine.finish_load(lambda: None)  # the timer's first work: every stored state read
        clock.advance(10)
        if not clean:  # as a running server does every few seconds: what the next start takes as the stop
            await alive(engine)
    clock.advance(5)  # stopped again from +160 to +165: the deadline at +200 is after it, not inside
    async with running(config, clock) as engine:
        assert engine.fire_due(clock.now()) == 0 and status(engine, "a") is Status.UP  # was: missed at once
        assert engine.fire_due(clock.now() + 34.9) == 0
        assert engine.fire_due(clock.now() + 35) == 1  # at +200: the first downtime counted, once
        assert status(engine, "a") is Status.DOWN


async def test_a_restart_schedules_each_check_by_the_deadline_it_computed_once_for_the_downtime(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        "".join(f'[checks.c{i}]\nkey = "{new_key()}"\nevery = "{100 * (i + 1)}s"\n' for i in range(4))
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        for name in engine.checks:
            await ping(engine, name)
        clock.advance(150)
    clock.advance(100)  # down from +150 to +250: c0's deadline before, c1's inside, c2's and c3's after
    computed: list[str] = []
    real = states.next_deadline

    def counted(check: CheckConfig, st: CheckState) -> Deadline | None:
        computed.append(check.name)
        return real(check, st)

    monkeypatch.setattr(states, "next_deadline", counted)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)  # each stored state read, and scheduled as it is
        # Once each, not once more to schedule it; c1's again, for the state its extension made.
        assert sorted(computed) == ["c0", "c1", "c1", "c2", "c3"]
        for check in engine.checks.values():
            deadline = real(check.config, check.state)
            assert deadline is not None and check.heap_at == states.fire_time(check.state, deadline)
        assert engine.fire_due(clock.now()) == 1 and status(engine, "c0") is Status.LATE  # its deadline: at once


async def test_a_check_whose_deadline_cannot_be_computed_does_not_stop_a_restart(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(  # broken first: the checks after it are extended even so
        f'[checks.broken]\nkey = "{new_key()}"\nevery = "100s"\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "broken")
        await ping(engine, "a")
        clock.advance(50)
    clock.advance(100)  # a's deadline at +100 fell inside the downtime
    real = states.next_deadline

    def failing(check: CheckConfig, st: CheckState) -> Deadline | None:
        if check.name == "broken":
            raise RuntimeError("no deadline today")
        return real(check, st)

    monkeypatch.setattr(states, "next_deadline", failing)
    caplog.set_level("INFO", logger="heartfly.server.engine")
    async with running(config, clock) as engine:
        assert engine.downtime is not None
        assert engine.fire_due(clock.now() + 49.9) == 0  # a's deadline was extended by the downtime
        assert engine.checks["broken"].heap_at == clock.now() + RETRY_BROKEN_CHECK
    assert "check broken: cannot compute its deadline" in caplog.text
    assert "1 deadline(s) that fell in that time were extended" in caplog.text


async def died_past_a_deadline(write_config: ConfigWriter, clock: FakeClock) -> Config:
    """Check a's deadline passed while the process was alive, which then died before its timer
    ran; 300 s later. Its deadline fires at once on the next start."""
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n')
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a")
        clock.advance(120)
        await alive(engine)
    clock.advance(300)
    return config


async def test_a_deadline_before_an_unclean_stop_fires_at_once_on_start(write_config: ConfigWriter) -> None:
    clock = FakeClock()
    config = await died_past_a_deadline(write_config, clock)
    async with running(config, clock) as engine:
        assert engine.fire_due(clock.now()) == 1
        assert engine.checks["a"].state.status is Status.DOWN
    assert flips(config)[-1] == ("up", "down", "missed")


async def test_a_check_removed_from_the_file_keeps_its_history_and_comes_back_watched_afresh(
    write_config: ConfigWriter,
) -> None:
    key = new_key()
    both = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(both, clock) as engine:
        await ping(engine, "a", Kind.FAIL)
    only_b = write_config(f'[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n')
    async with running(only_b, clock) as engine:
        assert set(engine.checks) == {"b"}
        assert engine.lookup_key(key) is None
    clock.advance(7200)
    async with running(both, clock) as engine:
        state = engine.checks["a"].state
        assert state.status is Status.DOWN and state.due_at == clock.now() + 3600
    assert query(both, "SELECT COUNT(*) FROM pings") == [(1,)]
    assert query(both, "SELECT removed_at FROM checks WHERE name = 'a'") == [(None,)]


async def test_a_start_without_many_of_the_stored_checks_says_so_in_one_log_line(
    write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    body = "".join(f'[checks.c{i:02d}]\nkey = "{new_key()}"\nevery = "1h"\n' for i in range(12))
    clock = FakeClock()
    async with running(write_config(body + f'[checks.d]\nkey = "{new_key()}"\nevery = "1h"\n'), clock):
        pass
    caplog.set_level("INFO", logger="heartfly.server.engine")
    async with running(write_config(f'[checks.e]\nkey = "{new_key()}"\nevery = "1h"\n'), clock):
        lines = [r.getMessage() for r in caplog.records if "config" in r.getMessage()]
    shown = "c00, c01, c02, c03, c04, c05, c06, c07, c08, c09, ..."
    assert lines == [f"13 checks are no longer in the config ({shown}); their history is kept"]


async def test_a_reload_adds_and_removes_checks_and_recomputes_changed_schedules(write_config: ConfigWriter) -> None:
    key = new_key()
    config = write_config(f'[checks.a]\nkey = "{key}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a")
        anchor = clock.now()
        new = write_config(f'[checks.a]\nkey = "{key}"\nevery = "2h"\n[checks.c]\nkey = "{new_key()}"\nevery = "1m"\n')
        await engine.apply_config(new)
        assert engine.checks["a"].state.due_at == anchor + 7200
        assert engine.checks["c"].state.status is Status.NEW
        await engine.apply_config(write_config(f'[checks.c]\nkey = "{new_key()}"\nevery = "1m"\n'))
        assert set(engine.checks) == {"c"} and engine.lookup_key(key) is None
        assert engine.fire_due(clock.now() + 10_000) == 1  # only c is watched now


async def a_start_queued_behind_a_waiting_success(engine: Engine, clock: FakeClock) -> None:
    """Check a (min_runtime): a run of 2 s, its success waiting for a start that may be on its
    way, and the next run's start 0.5 s later, queued behind that success."""
    await ping(engine, "a", Kind.START)
    clock.advance(2)
    await ping(engine, "a")
    clock.advance(0.5)
    await ping(engine, "a", Kind.START)


async def test_a_reload_that_removes_a_check_applies_the_pings_it_held_first_and_none_when_it_comes_back(
    write_config: ConfigWriter,
) -> None:
    key, other = new_key(), f'[checks.b]\nkey = "{new_key()}"\nevery = "7d"\n'
    body = f'[checks.a]\nkey = "{key}"\nevery = "1h"\nmin_runtime = "1s"\nmax_runtime = "60s"\n'
    config = write_config(body + other)
    clock = FakeClock()
    async with running(config, clock) as engine:
        await a_start_queued_behind_a_waiting_success(engine, clock)
        clock.advance(1)
        await engine.apply_config(write_config(other))  # removed while both are held
        assert not engine._removed["a"].state.waiting
        clock.advance(86400)
        await engine.apply_config(write_config(body + other))  # back a day later, watched afresh
        assert engine.fire_due(clock.now() + 1) == 0 and status(engine, "a") is not Status.DOWN
        await engine.writer.flush()
    assert flips(config) == [("new", "running", None), ("running", "up", None), ("up", "running", None)]


@pytest.mark.parametrize("restarted", [False, True])
async def test_a_reload_that_adds_a_check_before_a_thousand_others_keeps_every_deadline(
    write_config: ConfigWriter, restarted: bool
) -> None:
    # The heap is compacted once it holds twice as many entries as there are checks, plus 1024: a
    # reload rebuilding the maps took the entries of the checks not yet back for stale ones.
    body = "".join(f'[checks.c{i:04d}]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n' for i in range(1200))
    config = write_config(body)
    clock = FakeClock()
    async with running(config, clock) as engine:
        for name in list(engine.checks):
            await ping(engine, name)
    async with running(config, clock) as engine:
        if not restarted:  # else every stored state is unread still: the reload reads them
            await engine.finish_load(lambda: None)
        await engine.apply_config(write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n' + body))
        assert engine.fire_due(clock.now() + 99.9) == 0
        assert engine.fire_due(clock.now() + 100) == 1200


async def test_old_pings_are_pruned_to_the_configured_count(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server="keep_pings = 20")
    clock = FakeClock()
    async with running(config, clock) as engine:
        for _ in range(50):
            await ping(engine, "a", Kind.LOG)
        engine.checkpoint()
        await housekeeping.prune(engine)
    ids = [r[0] for r in query(config, "SELECT id FROM pings ORDER BY id")]
    assert ids == list(range(31, 51))


async def test_pruning_keeps_the_pings_no_stored_state_includes_yet(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n', server="keep_pings = 20")
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        for _ in range(50):
            await ping(engine, "a", Kind.LOG)
        await housekeeping.prune(engine)  # no checkpoint since these pings: they are the only record of them
    ids = [r[0] for r in query(config, "SELECT id FROM pings ORDER BY id")]
    assert ids == list(range(1, 51))


async def test_pings_after_the_last_checkpoint_are_replayed_after_a_crash(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmax_runtime = "10m"\n')
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        for kind, run_id in [(Kind.SUCCESS, None), (Kind.START, "r1"), (Kind.LOG, None), (Kind.START, "r2")]:
            clock.advance(5)
            now = clock.now()
            await engine.record(engine.checks["a"], PingRecord(Event(kind, now, run_id), received_at=now))
        before = engine.checks["a"].state
    ((checkpointed, newest),) = query(config, "SELECT state_ping_id, (SELECT MAX(id) FROM pings) FROM checks")
    assert checkpointed < newest  # the last pings live only in the log: the process "died" before a checkpoint
    async with running(config, clock) as engine:
        after = engine.checks["a"].state
    assert after == before
    assert set(after.runs) == {"r1", "r2"} and after.last_ping_kind is Kind.START


async def test_the_last_runs_duration_kept_past_an_end_without_a_start_survives_a_crash_and_a_restart(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a", Kind.START)
        clock.advance(30)
        await ping(engine, "a")
        ended = clock.now()
        clock.advance(10)
        await ping(engine, "a")  # no start, and no change of state: only in the log when the process "dies"
    ((checkpointed, newest),) = query(config, "SELECT state_ping_id, (SELECT MAX(id) FROM pings) FROM checks")
    assert checkpointed < newest
    kept = (30.0, ended, ended + 10)
    for _ in ("replayed from the log", "read from the checkpoint of a clean stop"):
        async with running(config, clock) as engine:
            st = engine.checks["a"].state
            assert (st.last_duration, st.last_duration_at, st.last_end_at) == kept
    ((state,),) = query(config, "SELECT state FROM checks")
    assert json.loads(state)["last_duration_at"] == ended


def _stored(config: Config) -> tuple[dict[str, int], int]:
    """Each check's checkpointed ping id, and the checkpoint mark."""
    ids = dict(query(config, "SELECT name, state_ping_id FROM checks"))
    ((mark,),) = query(config, "SELECT value FROM meta WHERE key = 'checkpoint'")
    return ids, int(mark)


async def test_a_state_is_checkpointed_once_its_oldest_unstored_ping_is_old_enough(
    write_config: ConfigWriter,
) -> None:
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a")  # new -> up: checkpointed with the ping (id 1)
        await ping(engine, "b")  # id 2, likewise
        await ping(engine, "a")  # id 3: only logged
        clock.advance(20)
        await ping(engine, "b")  # id 4: only logged
        clock.advance(CHECKPOINT_AFTER - 20)
        engine.checkpoint(clock.now())
        await engine.writer.flush()
        assert _stored(config) == ({"a": 3, "b": 2}, 3)  # b's ping 4 is newer than 30 s: replay from 4
        clock.advance(20)
        engine.checkpoint(clock.now())
        await engine.writer.flush()
        assert _stored(config) == ({"a": 3, "b": 4}, 4)
        before = {name: check.state for name, check in engine.checks.items()}
    async with running(config, clock) as engine:
        assert {name: check.state for name, check in engine.checks.items()} == before


async def test_a_crash_before_a_lazy_checkpoint_loses_no_ping(write_config: ConfigWriter) -> None:
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n[checks.b]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a")
        await ping(engine, "b")
        clock.advance(40)
        await ping(engine, "a")  # checkpointed below: older than CHECKPOINT_AFTER by then
        clock.advance(CHECKPOINT_AFTER + 1)
        await ping(engine, "b")  # not checkpointed: the process "dies" first
        engine.checkpoint(clock.now())
        await engine.writer.flush()
        assert _stored(config) == ({"a": 3, "b": 2}, 3)
        before = {name: check.state for name, check in engine.checks.items()}
    async with running(config, clock) as engine:
        after = {name: check.state for name, check in engine.checks.items()}
    assert after == before and after["b"].last_ping_at == clock.now()


async def test_a_check_removed_by_a_reload_keeps_its_unstored_pings_in_its_state(
    write_config: ConfigWriter,
) -> None:
    key_a, key_b = new_key(), new_key()
    config = write_config(f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\n[checks.b]\nkey = "{key_b}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a")
        clock.advance(5)
        await ping(engine, "a")  # only logged, until the reload drops a
        removed_state = engine.checks["a"].state
        await engine.apply_config(write_config(f'[checks.b]\nkey = "{key_b}"\nevery = "1h"\n'))
        engine.checkpoint(clock.now())  # the mark passes a's pings
        await engine.writer.flush()
    async with running(config, clock) as engine:  # a is back in the file
        assert engine.checks["a"].state.last_ping_at == removed_state.last_ping_at


async def test_status_reads_pings_that_no_checkpoint_includes_yet(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a")
        clock.advance(7)
        await ping(engine, "a")
        live = engine.checks["a"].state
        items, _, _, _ = await read_status(config)
    assert _stored(config)[0]["a"] == 1  # the second ping is only in the log
    assert items == [{**check_summary(config.checks["a"], live), "paused_until": None}]  # the API's shape
    assert items[0]["last_ping_at"] == iso(clock.now())


async def test_replaying_an_upstream_ping_does_not_arm_a_step_that_has_run_since(write_config: ConfigWriter) -> None:
    config = write_config(
        f'[checks.u]\nkey = "{new_key()}"\nevery = "1h"\n[checks.d]\nkey = "{new_key()}"\nafter = "u"\nwithin = "10m"\n'
    )
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "u")
        await ping(engine, "d")
        clock.advance(60)
        await ping(engine, "u")  # only in the log; arms d, and d's armed state is stored at once
        clock.advance(5)
        await ping(engine, "d")  # d runs: disarmed, stored with this ping (a newer one than u's)
        assert engine.checks["d"].state.step_due is None
        before = {name: check.state for name, check in engine.checks.items()}
    async with running(config, clock) as engine:  # "crash" before u's lazy checkpoint: u's ping is replayed
        assert {name: check.state for name, check in engine.checks.items()} == before
        clock.advance(601)
        assert engine.fire_due(clock.now()) == 0  # no false step_missed


async def test_a_check_removed_by_a_reload_and_added_back_is_watched_again_with_its_history(
    write_config: ConfigWriter,
) -> None:
    key_a, key_b = new_key(), new_key()
    both = write_config(f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\n[checks.b]\nkey = "{key_b}"\nevery = "1h"\n')
    only_b = write_config(f'[checks.b]\nkey = "{key_b}"\nevery = "1h"\n', name="b.toml")
    clock = FakeClock()
    async with running(both, clock) as engine:
        await ping(engine, "a")
        first_id, last_ping = engine.checks["a"].id, engine.checks["a"].state.last_ping_at
        await engine.apply_config(only_b)
        clock.advance(10)
        await engine.apply_config(both)
        assert engine.checks["a"].state.last_ping_at == last_ping  # its history is back
        await ping(engine, "b")  # the writer still works
        await ping(engine, "a")
        assert not engine.writer.failing
        assert engine.checks["a"].id == first_id and engine.lookup_key(key_a) is not None
    rows = query(both, "SELECT name, removed_at FROM checks ORDER BY id")
    pings_of_a = query(both, "SELECT COUNT(*) FROM pings WHERE check_id = ?", (first_id,))
    assert rows == [("a", None), ("b", None)] and pings_of_a == [(2,)]


async def test_a_check_removed_while_stopped_can_come_back_by_a_reload(write_config: ConfigWriter) -> None:
    key_a, key_b = new_key(), new_key()
    both = write_config(f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\n[checks.b]\nkey = "{key_b}"\nevery = "1h"\n')
    only_b = write_config(f'[checks.b]\nkey = "{key_b}"\nevery = "1h"\n', name="b.toml")
    clock = FakeClock()
    async with running(both, clock) as engine:
        await ping(engine, "a")
    async with running(only_b, clock) as engine:
        await engine.apply_config(both)
        await ping(engine, "a")
        assert not engine.writer.failing and engine.checks["a"].state.status is Status.UP


def _a_and_b(write_config: ConfigWriter) -> tuple[Config, Config]:
    """a alerts after 3 failures in a row, so its first two are routine pings: stored lazily."""
    key_a, key_b = new_key(), new_key()
    a = f'[checks.a]\nkey = "{key_a}"\nevery = "1h"\nfailures_before_alert = 3\n'
    b = f'[checks.b]\nkey = "{key_b}"\nevery = "1h"\n'
    return write_config(a + b), write_config(b, name="b.toml")


async def _crash_with_unstored_pings_then_start_without_a(both: Config, only_b: Config, clock: FakeClock) -> int:
    """a's last two pings are in the log but not in its stored state; a start without a moves the
    checkpoint mark past them. Returns the id of a's last ping."""
    async with running(both, clock, clean=False) as engine:
        await ping(engine, "a")
        run_timer(engine, clock, states.REORDER_WINDOW + 0.2)  # new -> up once its window passed: stored
        clock.advance(5)
        await ping(engine, "a", Kind.FAIL)  # one failure in a row: no change of status
        await ping(engine, "a", Kind.FAIL)  # two: the crash comes before their lazy checkpoint
        last = engine.checks["a"].ping_id
    async with running(only_b, clock) as engine:
        await ping(engine, "b")
    return last


def _has_both_failures_once(engine: Engine, last: int) -> None:
    a = engine.checks["a"]
    # Applied twice, the two failures would count four and take it down (once the reorder window
    # has passed: with failures_before_alert 3, the ends a state holds for it count then).
    held = states.apply_held(a.config, a.state, engine.clock.now() + states.REORDER_WINDOW + 1, due=False)
    st = held[-1].state if held else a.state
    assert (a.ping_id, st.failures, st.status) == (last, 2, Status.UP)


async def test_a_check_removed_after_a_crash_gets_its_unstored_pings_back_when_it_returns_at_a_start(
    write_config: ConfigWriter,
) -> None:
    both, only_b = _a_and_b(write_config)
    clock = FakeClock()
    last = await _crash_with_unstored_pings_then_start_without_a(both, only_b, clock)
    async with running(both, clock, clean=False) as engine:
        _has_both_failures_once(engine, last)
    async with running(both, clock) as engine:  # stored at that start: a crash right after lost nothing
        _has_both_failures_once(engine, last)


async def test_a_check_removed_after_a_crash_gets_its_unstored_pings_back_when_a_reload_returns_it(
    write_config: ConfigWriter,
) -> None:
    both, only_b = _a_and_b(write_config)
    clock = FakeClock()
    last = await _crash_with_unstored_pings_then_start_without_a(both, only_b, clock)
    async with running(only_b, clock, clean=False) as engine:
        await engine.apply_config(both)
        _has_both_failures_once(engine, last)
    async with running(both, clock) as engine:  # stored by the reload: the crash after it lost nothing
        _has_both_failures_once(engine, last)
        await engine.apply_config(only_b)  # removed by a reload, its state stored: nothing to read back
        await engine.apply_config(both)
        _has_both_failures_once(engine, last)


async def _crash_with_two_unstored_failures_of_a(write_config: ConfigWriter) -> tuple[Config, FakeClock, int]:
    """a's two failures are in the log but not in its stored state: the config (_a_and_b), its
    clock, and the last failure's id."""
    both, _ = _a_and_b(write_config)
    clock = FakeClock()
    async with running(both, clock, clean=False) as engine:
        await ping(engine, "a")
        run_timer(engine, clock, states.REORDER_WINDOW + 0.2)  # new -> up once its window passed: stored
        await ping(engine, "b")
        clock.advance(5)
        await ping(engine, "a", Kind.FAIL)
        await ping(engine, "a", Kind.FAIL)
        return both, clock, engine.checks["a"].ping_id


async def test_a_restart_answers_before_it_replays_a_checks_pings_and_a_new_ping_comes_after_them(
    write_config: ConfigWriter,
) -> None:
    both, clock, last = await _crash_with_two_unstored_failures_of_a(write_config)
    async with running(both, clock, clean=False) as engine:
        assert not engine.checks["a"].loaded  # its pings wait for its state to be read
        clock.advance(5)
        await ping(engine, "a", Kind.FAIL)  # the third failure in a row, after the two replayed
        run_timer(engine, clock, states.REORDER_WINDOW + 0.2)  # it waits out the reorder window
        assert engine.checks["a"].state.failures == 3 and status(engine, "a") is Status.DOWN
        assert engine.checks["a"].ping_id == last + 1
    assert flips(both)[-1] == ("up", "down", "failed")


async def test_a_crash_before_a_restart_has_replayed_every_checks_pings_loses_none_of_them(
    write_config: ConfigWriter,
) -> None:
    both, clock, last = await _crash_with_two_unstored_failures_of_a(write_config)
    async with running(both, clock, clean=False) as engine:  # a's state is never read: its pings wait
        await ping(engine, "b")
        clock.advance(CHECKPOINT_AFTER + 1)
        engine.checkpoint(clock.now())  # stores b's state: the mark must still not pass a's pings
        await engine.writer.flush()
        assert not engine.checks["a"].loaded
        assert _stored(both)[1] < last - 1
    async with running(both, clock) as engine:
        _has_both_failures_once(engine, last)
    async with running(both, clock) as engine:  # the stop after every state was read moved the mark
        assert _stored(both)[1] == engine.checks["b"].ping_id
        _has_both_failures_once(engine, last)


async def test_states_that_replayed_pings_are_stored_by_the_checkpoints_and_the_mark_and_downtime_wait(
    write_config: ConfigWriter,
) -> None:
    # Not stored at once: 100k of them queued during the read held every ping's commit back.
    both, clock, last = await _crash_with_two_unstored_failures_of_a(write_config)

    def unread_downtimes() -> list[list[float]]:
        rows = query(both, "SELECT value FROM meta WHERE key = 'unread_downtimes'")
        return json.loads(rows[0][0]) if rows else []

    async with running(both, clock, clean=False) as engine:
        await engine.finish_load(lambda: None)  # every state read; a's replayed its two failures
        engine.checkpoint(clock.now())
        await engine.writer.flush()
        ids, mark = _stored(both)
        assert ids["a"] < last and mark < last - 1  # a's pings are still to be replayed by a next start
        assert len(unread_downtimes()) == 1  # and so is this start's downtime, to a's stored state
        clock.advance(CHECKPOINT_AFTER + 1)
        engine.checkpoint(clock.now())
        await engine.writer.flush()
        assert _stored(both) == ({"a": last, "b": ids["b"]}, last) and unread_downtimes() == []
    async with running(both, clock) as engine:
        _has_both_failures_once(engine, last)


async def test_pings_a_restart_could_not_replay_onto_a_checks_state_are_replayed_by_the_next_start(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    both, clock, last = await _crash_with_two_unstored_failures_of_a(write_config)
    real = states.receive_timed

    def failing(config: CheckConfig, *args: Any, **kwargs: Any) -> Any:  # a bug in the state machine
        if config.name == "a":
            raise RuntimeError("a bug")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(states, "receive_timed", failing)
    async with running(both, clock, clean=False) as engine:
        await engine.finish_load(lambda: None)  # a is watched afresh; its row, and its pings, are kept
        assert engine.checks["a"].state.status is Status.NEW
        assert engine.checks["a"].ping_id == _stored(both)[0]["a"] < last
        await ping(engine, "b")
        clock.advance(CHECKPOINT_AFTER + 1)
        engine.checkpoint(clock.now())
        await engine.writer.flush()
        assert _stored(both)[1] < last - 1
    monkeypatch.setattr(states, "receive_timed", real)
    async with running(both, clock) as engine:  # the bug fixed
        _has_both_failures_once(engine, last)


async def test_ping_ids_are_never_handed_out_twice_even_if_a_state_names_an_unstored_one(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a")
    query(config, "UPDATE checks SET state_ping_id = 40")  # as if a refused ping's id got into a state
    async with running(config, clock) as engine:
        await ping(engine, "a")
        assert engine.checks["a"].ping_id == 41


async def test_a_wall_clock_stepping_back_does_not_hold_checkpoints_up(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a")
        await ping(engine, "a")  # only in the log
        clock.advance(-3600)
        engine.checkpoint(clock.now())
        await engine.writer.flush()
        assert _stored(config) == ({"a": 2}, 2)


async def test_an_idle_server_does_not_rewrite_the_checkpoint_mark(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        engine.checkpoint(clock.now())
        await engine.writer.flush()
        commits = engine.writer.commits
        for _ in range(5):
            clock.advance(0.1)
            engine.checkpoint(clock.now())
        await engine.writer.flush()
        assert engine.writer.commits == commits


async def test_a_held_maintenance_window_that_ended_while_stopped_is_summarized_at_the_next_start(
    write_config: ConfigWriter,
) -> None:
    clock = FakeClock()
    t0 = clock.now()
    begun = datetime.fromtimestamp(t0 + 60, UTC).isoformat()
    config = write_config(
        '[channels.journal]\ntype = "log"\n'
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["journal"]\n'
        f'[[maintenance]]\nname = "move"\nstart = "{begun}"\nduration = "10m"\n'
    )
    async with running(config, clock) as engine:
        clock.advance(120)  # in the window
        await ping(engine, "a", Kind.FAIL)
        assert status(engine, "a") is Status.DOWN
        engine.close_windows(clock.now())
    assert query(config, "SELECT event FROM outbox") == []  # held
    clock.advance(3600)  # the window ended while stopped
    async with running(config, clock) as engine:
        engine.close_windows(clock.now())  # not before every state is read: nothing yet
        await engine.finish_load(lambda: None)
        engine.close_windows(clock.now())
        await engine.writer.flush()
        engine.close_windows(clock.now() + 1)  # handled once, not again
        await engine.writer.flush()
    [(event, channel, payload)] = query(config, "SELECT event, channel, payload FROM outbox")
    assert (event, channel) == ("maintenance", "journal")
    summary = json.loads(payload)
    assert summary["window"] == "move" and [d["check"] for d in summary["down"]] == ["a"]


async def test_a_new_checks_state_is_written_once_at_its_first_start_and_found_after_a_crash(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its INSERT holds its state: no second write of the same state (100k of them at a first start)."""
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    rows: list[store.StateRow] = []
    real = Engine._mark_stored

    def spy(engine: Engine, check: object) -> store.StateRow:
        row = real(engine, check)  # type: ignore[arg-type]
        rows.append(row)
        return row

    monkeypatch.setattr(Engine, "_mark_stored", spy)
    async with running(config, clock, clean=False) as engine:
        first = engine.checks["a"].state
    assert rows == []
    ((stored,),) = query(config, "SELECT state FROM checks")
    assert store.decode_state(stored) == first
    clock.advance(10)
    async with running(config, clock) as engine:
        assert engine.checks["a"].state.due_at == first.due_at


async def test_a_success_waiting_out_the_reorder_window_at_a_stop_is_judged_before_the_downtime_is_applied(
    write_config: ConfigWriter,
) -> None:
    # min_runtime: the success waits for a start that may be on its way. Stopped 1 s after it, for
    # 1000 s: the due time it sets (+110) falls in the downtime, and moves past it like any other.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\nmin_runtime = "1s"\n')
    clock = FakeClock()
    begun = clock.now()
    async with running(config, clock) as engine:
        await ping(engine, "a", Kind.START)
        clock.advance(10)
        await ping(engine, "a")
        assert engine.checks["a"].state.waiting
        clock.advance(1)
    clock.advance(1000)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        assert engine.fire_due(clock.now() + 5) == 0 and status(engine, "a") is Status.UP
        await engine.writer.flush()
    assert flips(config) == [("new", "running", None), ("running", "up", None)]
    assert query(config, "SELECT started_at, ended_at, outcome FROM runs") == [(begun, begun + 10, "success")]


@pytest.mark.parametrize("crash", [False, True])
async def test_a_ping_held_behind_a_held_deadline_at_a_stop_is_applied_before_the_downtime_is(
    write_config: ConfigWriter, crash: bool
) -> None:
    # A start replayed 2.8 s late: its overrun (max_runtime 2 s, due at -0.8) waits out the window,
    # and its end, sent live, waits behind it. Stopped a second later for 200 s: the due time the
    # end sets (+60) falls in the downtime and moves past it like any other, not a "missed" at once.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "60s"\ngrace = "0s"\nmax_runtime = "2s"\n')
    clock = FakeClock()
    t0 = clock.now()
    async with running(config, clock, clean=not crash) as engine:
        await ping(engine, "a", Kind.START, at=t0 - 2.8)
        clock.advance(0.05)
        await ping(engine, "a")
        assert engine.checks["a"].state.waiting
        clock.advance(1)
    clock.advance(200)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        engine.fire_due(clock.now() + 5)
        assert status(engine, "a") is Status.UP
        await engine.writer.flush()
    assert flips(config) == [("new", "running", None), ("running", "down", "overrun"), ("down", "up", None)]


@pytest.mark.parametrize("crash", [False, True])
async def test_a_ping_on_its_way_counts_after_a_quick_restart_inside_the_reorder_window(
    write_config: ConfigWriter, crash: bool
) -> None:
    # A start replayed 2.8 s late: its stall (2 s, due at -0.8) waits out the window, to +5, and the
    # newest progress, live, waits behind it. Stopped at +1, back at +3: the progress from -1.5
    # (inside the stall limit), still on its way, comes at +3.5, inside the window. No stall.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nstall = "2s"\n')
    clock = FakeClock()
    t0 = clock.now()
    await a_progress_held_then_a_stop(config, clock, clean=not crash, older=False)
    clock.advance(2)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        engine.fire_due(clock.now())
        assert engine.checks["a"].state.waiting  # the window is still open: it still holds the progress
        clock.advance(0.5)
        await ping(engine, "a", Kind.PROGRESS, at=t0 - 1.5)
        clock.advance(0.4)
        await ping(engine, "a", Kind.PROGRESS)
        engine.fire_due(clock.now() + 1.5)
        assert status(engine, "a") is Status.RUNNING
        await engine.writer.flush()
    assert flips(config) == [("new", "running", None)]


@pytest.mark.parametrize("crash", [False, True])
async def test_a_start_on_its_way_for_a_waiting_success_counts_after_a_quick_restart(
    write_config: ConfigWriter, crash: bool
) -> None:
    # min_runtime 1 s: the success at 0 waits for a start that may be on its way; stopped at +1,
    # back at +3, inside its window. The start (-0.3) comes at +3.5: a run too fast, as without
    # the restart (the restart used to apply the waiting success at once, as a success).
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmin_runtime = "1s"\n')
    clock = FakeClock()
    t0 = clock.now()
    await a_success_held_then_a_stop(config, clock, clean=not crash)
    clock.advance(2)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        engine.fire_due(clock.now())
        clock.advance(0.5)
        await ping(engine, "a", Kind.START, at=t0 - 0.3)
        engine.fire_due(clock.now() + 10)
        await engine.writer.flush()
    assert flips(config) == [("new", "running", None), ("running", "down", "too_fast")]


@pytest.mark.parametrize("crash", [False, True])
async def test_a_due_time_that_a_success_held_over_a_quick_restart_sets_in_its_downtime_is_extended(
    write_config: ConfigWriter, crash: bool
) -> None:
    # every 3 s: the success at 0 waits for a start that may be on its way (min_runtime), and sets
    # the next due time, +3, once applied. Stopped at +1, back at +4, inside its window: the due
    # time fell in the downtime, and is extended as the others are, not told missed at once.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "3s"\ngrace = "0s"\nmin_runtime = "1s"\n')
    clock = FakeClock()
    await a_success_held_then_a_stop(config, clock, clean=not crash)
    clock.advance(3)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        run_timer(engine, clock, 2)  # to 1 s after the window
        assert not engine.checks["a"].state.waiting and status(engine, "a") is Status.UP
        await engine.writer.flush()
    assert flips(config) == [("new", "running", None), ("running", "up", None)]


@pytest.mark.parametrize("crash", [False, True])
async def test_a_stall_that_a_progress_held_over_a_quick_restart_sets_in_its_downtime_is_extended(
    write_config: ConfigWriter, crash: bool
) -> None:
    # stall 2 s: a start replayed 2.8 s late (its stall held); a live progress at +0.05 waits behind
    # it; the progress from -1.5 comes and meets the limit. Stopped at +1, back at +4: the stall
    # the held progress sets (+2.05) fell in the downtime, when no ping could come.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nstall = "2s"\n')
    clock = FakeClock()
    await a_progress_held_then_a_stop(config, clock, clean=not crash, older=True)
    clock.advance(3)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        run_timer(engine, clock, 2)
        assert not engine.checks["a"].state.waiting and status(engine, "a") is Status.RUNNING
        await engine.writer.flush()
    assert flips(config) == [("new", "running", None)]


@pytest.mark.parametrize("crash", [False, True])
async def test_due_times_that_two_successes_held_over_a_quick_restart_set_in_its_downtime_are_both_extended(
    write_config: ConfigWriter, crash: bool
) -> None:
    # every 3 s: successes at 0 and +0.6 wait for starts that may be on their way (min_runtime);
    # applied, they set due times +3 and +3.6. Stopped at +1 (the last alive mark at +0.5, before
    # the second), back at +4: both fell in the downtime.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "3s"\ngrace = "0s"\nmin_runtime = "0.1s"\n')
    clock = FakeClock()
    t0 = clock.now()
    async with running(config, clock, clean=not crash) as engine:
        await ping(engine, "a", Kind.START, at=t0 - 10)
        await ping(engine, "a")
        clock.advance(0.3)
        await ping(engine, "a", Kind.START)
        clock.advance(0.2)
        await alive(engine)
        clock.advance(0.1)
        await ping(engine, "a")
        assert len(engine.checks["a"].state.waiting) == 3  # both successes, the start between them queued
        clock.advance(0.4)
    clock.advance(3)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        run_timer(engine, clock, 3)
        assert not engine.checks["a"].state.waiting and status(engine, "a") is Status.UP
        await engine.writer.flush()
    runs = [("running", "up", None), ("up", "running", None), ("running", "up", None)]
    assert flips(config) == [("new", "running", None), *runs]  # two runs, no missed


@pytest.mark.parametrize("crash", [False, True])
async def test_a_second_quick_restart_within_the_window_keeps_the_first_ones_extension(
    write_config: ConfigWriter, crash: bool
) -> None:
    # The success at 0 waits (due +3 once applied); stopped +1 to +4, then again +4.4 to +4.8, both
    # within its window: the due time in the first downtime is extended all the same.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "3s"\ngrace = "0s"\nmin_runtime = "1s"\n')
    clock = FakeClock()
    t0 = clock.now()
    async with running(config, clock) as engine:
        await ping(engine, "a", Kind.START, at=t0 - 10)
        await ping(engine, "a")
        clock.advance(1)
    clock.advance(3)
    async with running(config, clock, clean=not crash) as engine:
        await engine.finish_load(lambda: None)
        engine.fire_due(clock.now())
        clock.advance(0.3)
        await alive(engine)
        clock.advance(0.1)
    clock.advance(0.4)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        assert engine.checks["a"].state.waiting
        run_timer(engine, clock, 3)
        assert status(engine, "a") is Status.UP
        await engine.writer.flush()
    assert flips(config) == [("new", "running", None), ("running", "up", None)]


@pytest.mark.parametrize("crash", [False, True])
async def test_a_stall_from_before_the_stop_behind_pings_held_over_a_quick_restart_is_extended_once_at_most(
    write_config: ConfigWriter, crash: bool
) -> None:
    # After a run -9 to -8.5, a spooled success dated -7 waits (min_runtime; due +3 once applied), and a spooled start
    # dated -6.3 waits behind it: its stall (1 s) passed at -5.3, before the stop, held only by
    # the window. Stopped +1 to +4: the stall is told at the window's end (+5.1), not after a
    # second extension by the same downtime (the success's, kept for the open run).
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "10s"\ngrace = "0s"\nmin_runtime = "0.2s"\nstall = "1s"\n'
    )
    clock = FakeClock()
    t0 = clock.now() + 9.5
    async with running(config, clock, clean=not crash) as engine:
        clock.advance(0.5)
        await ping(engine, "a", Kind.START)  # a run from -9 to -8.5: due +1.5
        clock.advance(0.5)
        await ping(engine, "a")
        run_timer(engine, clock, 8.5)
        assert not engine.checks["a"].state.waiting and status(engine, "a") is Status.UP
        await ping(engine, "a", Kind.SUCCESS, at=t0 - 7)
        clock.advance(0.1)
        await ping(engine, "a", Kind.START, at=t0 - 6.3)
        clock.advance(0.8)
        await alive(engine)
        clock.advance(0.1)
    clock.advance(3)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        run_timer(engine, clock, 1.5)
        assert status(engine, "a") is Status.DOWN
        await engine.writer.flush()
    assert flips(config)[-1][1:] == ("down", "stalled")


async def a_and_z_to_leave_unread(write_config: ConfigWriter) -> Config:
    """a: every 2 s, min_runtime (a success waits for its start); z: pinged once, there for a
    start to die with its state unread (its downtime kept for the next)."""
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "2s"\ngrace = "0s"\nmin_runtime = "0.1s"\n'
        f'[checks.z]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    async with running(config, FakeClock()) as engine:
        await ping(engine, "z")
    return config


async def test_a_long_downtime_before_a_start_that_died_reading_does_not_extend_pings_held_after_it(
    write_config: ConfigWriter,
) -> None:
    # a: every 2 s, min_runtime. Down 600 s; start A: a's run from +10.5, its success at +11.5
    # waits; A dies at +12.5 with z unread (its downtime kept). Start B at +14, within the window:
    # the due time +13.5 falls in B's downtime and is extended by it (to B's settle), not by the
    # 600 s before A, when nothing of a's was held.
    config = await a_and_z_to_leave_unread(write_config)
    clock = FakeClock()
    clock.advance(600)
    async with running(config, clock, clean=False) as engine:
        clock.advance(10.5)
        await ping(engine, "a", Kind.START)
        clock.advance(1)
        await ping(engine, "a")
        assert engine.checks["a"].state.waiting and not engine.checks["z"].loaded
        clock.advance(0.5)
        await alive(engine)
        await engine.writer.flush()
        clock.advance(0.5)
    clock.advance(1.5)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        run_timer(engine, clock, 10)  # B's settle, and more: the job is gone, the due time missed
        assert status(engine, "a") is Status.DOWN
        await engine.writer.flush()
    assert flips(config)[-2:] == [("down", "up", None), ("up", "down", "missed")]


async def test_a_downtime_a_ping_was_held_over_counts_though_its_last_alive_mark_came_well_before_it(
    write_config: ConfigWriter,
) -> None:
    # A success (min_runtime: it waits) 1.2 s after the last alive mark m, then a crash; start A
    # (m+3.5) dies reading the states, start B (m+5) comes within the window. The due time the
    # success sets (m+3.2) fell in the first downtime (m to m+3.5), which it was held over.
    config = await a_and_z_to_leave_unread(write_config)
    clock = FakeClock()
    clock.advance(1)
    async with running(config, clock, clean=False) as engine:
        await engine.finish_load(lambda: None)
        clock.advance(2)
        await ping(engine, "a", Kind.START)
        clock.advance(0.5)
        await alive(engine)
        m = clock.now()
        clock.advance(1.2)
        await ping(engine, "a")
        await engine.writer.flush()
        clock.advance(0.1)
    clock.advance(2.2)
    async with running(config, clock, clean=False) as engine:  # A: dies with a and z unread
        assert not engine.checks["a"].loaded and not engine.checks["z"].loaded
        clock.advance(0.5)
        await alive(engine)
        await engine.writer.flush()
        clock.advance(0.3)
    clock.advance(0.7)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        run_timer(engine, clock, m + 9.5 - clock.now())  # A's settle is m+9.75
        assert status(engine, "a") is Status.UP
        run_timer(engine, clock, 1)
        assert status(engine, "a") is Status.DOWN  # the job is gone: missed, once extended
        await engine.writer.flush()


async def test_a_dead_starts_downtime_does_not_extend_a_ping_it_took_after_it(write_config: ConfigWriter) -> None:
    # every 1 s. Start A at +0.9 (after a clean stop at 0) takes a's run, its success at +1.2 held
    # (min_runtime; due +2.2), marks alive at +2.3 and dies with z unread. Start B at +6.1, within
    # the window: the due time +2.2, when A was taking pings, is told at the window's end, not
    # extended by A's own downtime (before the success) to its settle, and then by B's.
    config = write_config(
        f'[checks.a]\nkey = "{new_key()}"\nevery = "1s"\ngrace = "0s"\nmin_runtime = "0.1s"\n'
        f'[checks.z]\nkey = "{new_key()}"\nevery = "1h"\n'
    )
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "z")
    clock.advance(0.9)
    async with running(config, clock, clean=False) as engine:
        clock.advance(0.1)
        await ping(engine, "a", Kind.START)
        clock.advance(0.2)
        await ping(engine, "a")
        assert engine.checks["a"].state.waiting and not engine.checks["z"].loaded
        clock.advance(1.1)
        await alive(engine)
        await engine.writer.flush()
        clock.advance(0.1)
    clock.advance(3.7)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        run_timer(engine, clock, 0.5)  # past the window (+6.2)
        assert status(engine, "a") is Status.DOWN
        await engine.writer.flush()


async def test_a_ping_taken_after_a_quick_restart_and_held_behind_an_older_one_gets_no_extension(
    write_config: ConfigWriter,
) -> None:
    # A success at 0 waits (min_runtime); stopped at +1, back at +3, within its window. The next
    # run's start, taken at +3.5, waits behind it: its overrun (max_runtime 2 s, +5.5) is judged as
    # any live start's, not moved to the restart's settle as the held success's deadlines are.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmax_runtime = "2s"\nmin_runtime = "0.1s"\n')
    clock = FakeClock()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a", Kind.START, at=clock.now() - 0.5)
        await ping(engine, "a")
        clock.advance(0.8)
        await alive(engine)
        clock.advance(0.2)
    clock.advance(2)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        clock.advance(0.5)
        await ping(engine, "a", Kind.START)
        assert len(engine.checks["a"].state.waiting) == 2
        run_timer(engine, clock, 2.2)  # to +5.7
        assert status(engine, "a") is Status.DOWN
        await engine.writer.flush()
    assert flips(config)[-1] == ("running", "down", "overrun")


async def test_a_pause_judges_a_success_waiting_out_the_reorder_window_first(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\nmin_runtime = "60s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a", Kind.START)
        clock.advance(10)
        await ping(engine, "a")  # ten seconds: too fast, once judged
        await engine.pause(engine.checks["a"])
        assert not engine.checks["a"].state.waiting and status(engine, "a") is Status.PAUSED
    assert flips(config) == [("new", "running", None), ("running", "down", "too_fast"), ("down", "paused", None)]


async def test_a_pause_applies_a_start_queued_behind_a_waiting_success_and_the_stall_it_had_since(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmin_runtime = "1s"\nstall = "3s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await a_start_queued_behind_a_waiting_success(engine, clock)
        assert len(engine.checks["a"].state.waiting) == 2
        clock.advance(3.9)  # inside the success's window; the run started 3.9 s ago, silent since
        await engine.pause(engine.checks["a"])
        assert not engine.checks["a"].state.waiting and status(engine, "a") is Status.PAUSED
    assert flips(config) == [
        ("new", "running", None),
        ("running", "up", None),
        ("up", "running", None),
        ("running", "down", "stalled"),
        ("down", "paused", None),
    ]


async def test_pings_held_while_a_check_is_paused_are_applied_to_it_before_it_resumes(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmin_runtime = "1s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await engine.pause(engine.checks["a"])
        clock.advance(1)
        await ping(engine, "a", Kind.START)
        clock.advance(1.5)
        await ping(engine, "a")  # waits, though the check is paused
        clock.advance(0.5)
        await ping(engine, "a", Kind.FAIL)  # queued behind it
        clock.advance(1)
        await engine.resume(engine.checks["a"])
        assert not engine.checks["a"].state.waiting
        engine.fire_due(clock.now() + 10)
        assert status(engine, "a") is not Status.DOWN
    assert flips(config) == [("new", "paused", None), ("paused", "up", None)]


async def test_a_pause_of_a_check_holding_nothing_leaves_a_due_deadline_to_the_timer(
    write_config: ConfigWriter,
) -> None:
    # A cluster's leader holds a due deadline back until the pings its standbys took are read: a
    # pause must not fire it first (a ping answered before the deadline would be told missed).
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a")
        clock.advance(100.5)  # the deadline has passed; the timer has not fired it
        await engine.pause(engine.checks["a"])
    assert flips(config) == [("new", "up", None), ("up", "paused", None)]


async def test_a_pause_on_a_clusters_leader_leaves_due_deadlines_to_its_timer_though_the_check_held_a_ping(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\nmin_runtime = "10s"\n')
    clock = FakeClock()

    async def inbox_read() -> bool:
        return True

    async with running(config, clock) as engine:
        engine.before_fire = inbox_read  # a leader: due deadlines wait for the pings standbys took
        await ping(engine, "a")  # waits for its start
        assert engine.checks["a"].state.waiting
        clock.advance(100.5)  # the timer has read nothing yet, nor fired
        await engine.pause(engine.checks["a"])
        assert not engine.checks["a"].state.waiting
    assert flips(config) == [("new", "up", None), ("up", "paused", None)]


async def test_a_resume_of_a_check_that_is_not_paused_applies_nothing_it_holds(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmin_runtime = "10s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await a_start_queued_behind_a_waiting_success(engine, clock)
        held = engine.checks["a"].state.waiting
        await engine.resume(engine.checks["a"])  # not paused: nothing changes, its window still runs
        assert engine.checks["a"].state.waiting == held
    assert flips(config) == [("new", "running", None)]


async def test_a_pause_fires_no_deadline_after_it_for_a_success_dated_ahead_of_it(write_config: ConfigWriter) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "100s"\ngrace = "0s"\nmin_runtime = "10s"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        due = engine.checks["a"].state.due_at
        clock.advance(due - 0.7 - clock.now())
        await engine.record(engine.checks["a"], PingRecord(Event(Kind.SUCCESS, due + 0.2), received_at=clock.now()))
        assert engine.checks["a"].state.waiting  # a client 0.9 s fast: it waits for its start
        clock.advance(0.5)  # the pause comes 0.2 s before the due time
        await engine.pause(engine.checks["a"])
        assert status(engine, "a") is Status.PAUSED
    assert ("new", "down", "missed") not in flips(config)


async def test_a_check_back_in_the_config_records_and_tells_what_it_held_when_it_stopped(
    write_config: ConfigWriter,
) -> None:
    # Stopped 1 s after a success that waited for its start, and started without the check: the
    # run (3 s, too fast) is judged when the check comes back, and told, as a replayed ping's is.
    b = f'[checks.b]\nkey = "{new_key()}"\nevery = "7d"\n'
    back = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmin_runtime = "10s"\n' + b)
    only_b = write_config(b, name="b.toml")
    clock = FakeClock()
    async with running(back, clock) as engine:
        await ping(engine, "a", Kind.START)
        clock.advance(3)
        await ping(engine, "a")
        assert engine.checks["a"].state.waiting
    clock.advance(1)
    async with running(only_b, clock) as engine:
        clock.advance(60)
        await engine.apply_config(back)
        assert not engine.checks["a"].state.waiting
        await engine.writer.flush()
    assert flips(back) == [("new", "running", None), ("running", "down", "too_fast")]
    assert query(back, "SELECT outcome FROM runs") == [("too_fast",)]


@pytest.mark.parametrize("crash", [False, True])
async def test_a_success_waiting_at_a_crash_is_judged_after_the_pings_replayed_after_the_checkpoint(
    write_config: ConfigWriter, crash: bool
) -> None:
    # The newer start's ping lost the race and came after a checkpoint that holds the waiting success.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\nmin_runtime = "1s"\n')
    clock = FakeClock()
    t0 = clock.now()
    async with running(config, clock, clean=not crash) as engine:
        engine.checkpoint_after = 1.0  # as a cluster node's
        await ping(engine, "a", Kind.START)
        clock.advance(10)
        await ping(engine, "a")  # waits
        clock.advance(1.2)
        engine.checkpoint(clock.now())
        clock.advance(0.3)
        await ping(engine, "a", Kind.START, at=t0 + 9.5)
        if not crash:
            clock.advance(10)
            engine.fire_due(clock.now())
    if crash:
        clock.advance(5)
        async with running(config, clock) as engine:
            await engine.finish_load(lambda: None)
            engine.fire_due(clock.now() + 10)
    assert flips(config) == [("new", "running", None), ("running", "down", "too_fast")]


@pytest.mark.parametrize("clean", [True, False])
async def test_a_run_with_an_upper_case_uuid_started_before_the_upgrade_that_folds_them_ends_after_it(
    write_config: ConfigWriter, clean: bool
) -> None:
    # macOS's uuidgen: the version before stored the run id as sent (in the state, and in the pings
    # a crash leaves to replay); its end, after the upgrade, comes folded to lower case and closed
    # nothing: the run that ended well was told down, overrun, two hours later.
    rid = "4B2F0C6E-9A1D-4E7B-8C3F-2D5A6B7C8D9E"
    config = write_config(f'[checks.job]\nkey = "{new_key()}"\nevery = "1d"\nmax_runtime = "2h"\n')
    clock = FakeClock(1_800_000_000.0)
    async with running(config, clock, clean=clean) as engine:
        await ping_run(engine, Kind.START, "backup-a")  # running: the next start changes no state
        await ping_run(engine, Kind.START, rid)
    clock.advance(600)
    async with running(config, clock) as engine:
        await ping_run(engine, Kind.SUCCESS, "backup-a")
        await ping_run(engine, Kind.SUCCESS, parse_query({"rid": rid}, clock.now(), 3600.0).run_id)
        clock.advance(3 * 3600)
        engine.fire_due(clock.now())
        await engine.writer.flush()
        assert status(engine, "job") is not Status.DOWN
    assert query(config, "SELECT lower(run_id), outcome FROM runs ORDER BY id") == [
        ("backup-a", "success"),
        (rid.lower(), "success"),
    ]


async def ping_run(engine: Engine, kind: Kind, rid: str | None) -> None:
    now = engine.clock.now()
    await engine.record(engine.checks["job"], PingRecord(Event(kind, now, rid), received_at=now))


async def test_a_start_an_older_standby_put_in_the_inbox_with_an_upper_case_uuid_pairs_with_its_end(
    write_config: ConfigWriter,
) -> None:
    # docs/cluster.md: in a rolling upgrade an older node stands by, taking pings for the newer
    # leader; it wrote a UUID run id as sent, and the leader applied it so: the end the leader
    # took itself came folded, and the run that ended well was told down, overrun.
    rid = "4B2F0C6E-9A1D-4E7B-8C3F-2D5A6B7C8D9E"
    config = write_config(f'[checks.job]\nkey = "{new_key()}"\nevery = "1d"\nmax_runtime = "2h"\n')
    clock = FakeClock(1_800_000_000.0)
    async with running(config, clock) as engine:
        check = engine.checks["job"]
        start = PingRecord(Event(Kind.START, clock.now(), rid), received_at=clock.now())
        _, name, body = inbox.ping_row("old-standby", check.config, [start], batch=False)
        for taken in inbox.read(1, name, body).pings:
            await engine.record(check, taken)
        clock.advance(600)
        await ping_run(engine, Kind.SUCCESS, parse_query({"rid": rid}, clock.now(), 3600.0).run_id)
        clock.advance(3 * 3600)
        engine.fire_due(clock.now())
        await engine.writer.flush()
        assert status(engine, "job") is not Status.DOWN
    assert query(config, "SELECT lower(run_id), outcome FROM runs") == [(rid.lower(), "success")]


@pytest.mark.parametrize("clean", [True, False])
async def test_a_success_with_an_upper_case_uuid_held_at_the_upgrade_that_folds_them_closes_its_run(
    write_config: ConfigWriter, clean: bool
) -> None:
    # failures_before_alert above 1: an end waits out the reorder window (CheckState.waiting). Held
    # at the upgrade with its run id as the version before kept it, it was applied after the restart
    # as sent, while its run's start came back folded: it closed nothing, and the run that ended
    # well was told down, overrun, two hours later.
    rid = "4B2F0C6E-9A1D-4E7B-8C3F-2D5A6B7C8D9E"
    config = write_config(
        f'[checks.job]\nkey = "{new_key()}"\nevery = "1d"\nfailures_before_alert = 3\nmax_runtime = "2h"\n'
    )
    clock = FakeClock(1_800_000_000.0)
    async with running(config, clock, clean=clean) as engine:
        await ping_run(engine, Kind.START, rid)
        clock.advance(600)
        await ping_run(engine, Kind.SUCCESS, rid)  # held for the reorder window
        engine.checkpoint(clock.now())
        assert engine.checks["job"].state.waiting
    clock.advance(1)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        clock.advance(60)
        engine.fire_due(clock.now())
        clock.advance(3 * 3600)
        engine.fire_due(clock.now())
        await engine.writer.flush()
        assert status(engine, "job") is not Status.DOWN
    assert query(config, "SELECT lower(run_id), outcome FROM runs") == [(rid.lower(), "success")]
