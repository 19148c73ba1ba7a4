"""The wall clock moving without the server. A suspend: no ping could come in meanwhile, so the
deadlines in that time are extended as a restart's downtime extends them (Engine.watch_clock), and
a miss that is real is told after. A clock set forward or back extends nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from pytest_aiohttp import AiohttpClient

from heartfly.cli import report
from heartfly.core.clock import FakeClock
from heartfly.core.states import REORDER_WINDOW, Event, Kind, Reason, Status
from heartfly.server import heartbeat, housekeeping
from heartfly.server.engine import Engine, PingRecord
from heartfly.server.liveness import TIMER_STALE
from heartfly.store.api import StoreError
from heartfly.store.rows import ALIVE_AT, Write, decode_state
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query
from tests.test_alerts import (
    Heartfly,
    Receivers,
    check,
    fast,
    receivers,  # noqa: F401 - a fixture
    until,
    webhook,
)
from tests.test_restart import alive, ping, running
from tests.webutil import bearer

HOUR = 3600.0


def wake(engine: Engine, clock: FakeClock) -> None:
    """A timer wake-up: the clock looked at, then what is due fired."""
    engine.timer_alive.mark(clock.now())
    engine.watch_clock(clock.now())
    engine.fire_due(clock.now())


@contextlib.asynccontextmanager
async def pinged(write_config: ConfigWriter) -> AsyncIterator[tuple[Engine, FakeClock]]:
    """A check due every hour (grace 5 min), just pinged, and the timer's first wake-up."""
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\ngrace = "5m"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a")
        wake(engine, clock)
        yield engine, clock


async def test_a_suspend_while_running_extends_the_deadlines_in_it_and_a_real_miss_is_told_after(
    write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    async with pinged(write_config) as (engine, clock):
        due = clock.now() + HOUR + 300
        clock.advance(HOUR / 2)
        wake(engine, clock)
        clock.suspend(2 * HOUR)  # the machine slept through the deadline
        wake(engine, clock)
        check = engine.checks["a"]
        assert (check.state.status, check.state.reason) == (Status.UP, None)
        assert "this machine was suspended for 2 h" in caplog.text
        await engine.writer.flush()  # stored at once, as a restart's downtime, with an alive mark
        (text,) = query(engine.config, "SELECT state FROM checks WHERE name = 'a'")[0]
        assert decode_state(text).downtime_to == clock.now()
        assert query(engine.config, "SELECT value FROM meta WHERE key = ?", (ALIVE_AT,)) == [(repr(clock.now()),)]
        clock.advance(due + 2 * HOUR - clock.now() - 1)
        wake(engine, clock)
        assert (check.state.status, check.state.reason) == (Status.LATE, None)  # in its grace, extended too
        clock.advance(2)
        wake(engine, clock)
        assert (check.state.status, check.state.reason) == (Status.DOWN, Reason.MISSED)


@pytest.mark.both_stores
async def test_a_suspend_is_a_downtime_heartfly_status_and_the_api_list_as_one(
    write_config: ConfigWriter, aiohttp_client: AiohttpClient
) -> None:
    # The alert of a miss the suspend extended says "moved 2 h later by Heartfly's own downtime",
    # and README that a suspend is one: heartfly status named the last restart's instead, days
    # before, and GET /api/v1/downtimes did not list it.
    async with pinged(write_config) as (engine, clock):
        asleep_at = clock.now()
        clock.suspend(2 * HOUR)
        wake(engine, clock)
        await engine.writer.flush()
    _, _, downtime, _ = await report.read_status(engine.config)
    assert downtime is not None
    assert (downtime["stopped_at"], downtime["started_at"]) == (asleep_at, asleep_at + 2 * HOUR)
    words = report.format_status([], None, clock.now(), downtime)
    assert "this machine was last suspended for 2 h, from " in words, words
    # In a cluster, the leader's: heartfly status may run on another node's machine.
    words = report.format_status([], None, clock.now(), downtime, cluster=True)
    assert "\nthe leader's machine was last suspended for 2 h, from " in words, words
    client = await aiohttp_client(create_app(engine.config, clock=clock))
    listed = await (await client.get("/api/v1/downtimes", headers=bearer(engine.config))).json()
    assert [(d["seconds"], d["suspended"]) for d in listed] == [(2 * HOUR, True)]


@pytest.mark.parametrize("batch", [False, True])
async def test_a_ping_that_comes_after_a_resume_before_the_timer_wakes_finds_the_deadlines_extended(
    write_config: ConfigWriter, batch: bool
) -> None:
    async with pinged(write_config) as (engine, clock):
        clock.suspend(2 * HOUR)
        if batch:
            start = PingRecord(Event(Kind.START, clock.now()), received_at=clock.now())
            committed, _ = engine.record_batch(engine.checks["a"], [start])
            await committed
        else:
            await ping(engine, "a", Kind.START)  # not a late ping's deadline judged first: missed
        assert engine.checks["a"].state.status is Status.RUNNING


async def test_a_suspend_extends_by_the_time_asleep_not_by_a_step_or_time_awake_beside_it(
    write_config: ConfigWriter,
) -> None:
    # A step forward right after the resume (NTP's), later set back, must not be counted as sleep:
    # the checks would be silent for as long.
    async with pinged(write_config) as (engine, clock):
        due = clock.now() + HOUR + 300
        clock.advance(HOUR / 2)  # awake, and nobody looked at the clock
        clock.suspend(2 * HOUR)
        clock.advance(HOUR)  # the wrong step
        wake(engine, clock)
        clock.advance(-HOUR)  # its correction
        clock.advance(due + 2 * HOUR - clock.now() + 1)
        wake(engine, clock)
        assert (engine.checks["a"].state.status, engine.checks["a"].state.reason) == (Status.DOWN, Reason.MISSED)


async def test_short_suspends_one_after_another_push_a_deadline_on_by_their_time_asleep_at_most(
    write_config: ConfigWriter,
) -> None:
    async with pinged(write_config) as (engine, clock):
        due = clock.now() + HOUR + 300
        clock.advance(due - clock.now() - 10)
        wake(engine, clock)
        asleep = 0.0
        for _ in range(20):  # a laptop that keeps waking for 3 s and falling asleep again
            clock.suspend(5)
            asleep += 5
            for _ in range(3):
                clock.advance(1)
                wake(engine, clock)
        assert clock.now() > due + asleep
        assert (engine.checks["a"].state.status, engine.checks["a"].state.reason) == (Status.DOWN, Reason.MISSED)


async def test_a_clock_set_forward_extends_nothing_for_it_may_be_the_correction_of_a_wrong_one(
    write_config: ConfigWriter,
) -> None:
    # Extending by a step that a step back then corrects would leave the checks silent that long.
    async with pinged(write_config) as (engine, clock):
        clock.advance(2 * HOUR)  # both the wall clock and the time awake
        wake(engine, clock)
        assert (engine.checks["a"].state.status, engine.checks["a"].state.reason) == (Status.DOWN, Reason.MISSED)


async def test_a_clock_set_back_extends_nothing(write_config: ConfigWriter) -> None:
    async with pinged(write_config) as (engine, clock):
        state = engine.checks["a"].state
        clock.advance(-HOUR)
        wake(engine, clock)
        assert engine.checks["a"].state is state


async def test_a_clock_set_back_is_logged_for_the_failures_it_leaves_untold(
    write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # README: while a step back lasts, a failure is history (no alert). Nothing said so when it
    # happened: the failures of those minutes went untold, and nobody knew why.
    async with pinged(write_config) as (engine, clock):
        clock.advance(10)
        wake(engine, clock)
        clock.suspend(HOUR)  # neither a suspend nor a step forward is one
        wake(engine, clock)
        clock.step(HOUR)
        wake(engine, clock)
        assert "set back" not in caplog.text
        clock.advance(1)
        clock.step(-10 * 60)
        wake(engine, clock)
        assert "the system clock was set back by 10 min" in caplog.text, caplog.text


async def test_after_a_clock_set_back_the_alive_mark_follows_it_at_once(write_config: ConfigWriter) -> None:
    # Left ahead, it would date a crash in that hour after the restart: no downtime at all.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        task = asyncio.create_task(housekeeping.run(engine))
        try:
            await asyncio.sleep(3 * housekeeping.CHECKPOINT_ROUND)
            clock.advance(-HOUR)
            await asyncio.sleep(3 * housekeeping.CHECKPOINT_ROUND)
            await engine.writer.flush()
            assert query(config, "SELECT value FROM meta WHERE key = ?", (ALIVE_AT,)) == [(repr(clock.now()),)]
        finally:
            task.cancel()


async def test_a_restart_after_a_suspend_and_a_clock_set_back_still_extends_by_its_own_downtime(
    write_config: ConfigWriter,
) -> None:
    # The suspend's extension is dated 2 h ahead of the clock once it is set back; a crash then, and
    # the restart's downtime must still extend the deadline that fell in it.
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\ngrace = "5m"\n')
    clock = FakeClock()
    t0 = clock.now()
    async with running(config, clock, clean=False) as engine:
        await ping(engine, "a")
        clock.advance(HOUR / 2)
        wake(engine, clock)
        clock.suspend(2 * HOUR)
        wake(engine, clock)
        clock.advance(10 - 2 * HOUR)  # awake 10 s, then the clock set back 2 h
        clock.advance(t0 + HOUR - clock.now())
        await ping(engine, "a")  # on time: due again at t0 + 2 h 5 min
        clock.advance(HOUR / 2)
        await alive(engine)  # the last alive mark: the process dies at t0 + 1 h 30 min
    clock.advance(40 * 60)  # restarted at t0 + 2 h 10 min: the deadline fell in its downtime
    async with running(config, clock) as engine:
        engine.fire_due(clock.now())
        assert engine.checks["a"].state.status is not Status.DOWN


async def test_a_wall_clock_set_forward_is_no_stopped_timer_and_a_timer_that_stops_after_it_is_one(
    write_config: ConfigWriter,
) -> None:
    # Silence was the wall clock's move since the last wake-up: NTP setting forward a clock that
    # was wrong at boot made /readyz and the heartbeat say "the deadline timer is not running",
    # and a cluster's leader renewing its lease then gave it up (Node._cannot_fire).
    async with pinged(write_config) as (engine, clock):
        clock.step(HOUR)
        assert engine.timer_alive.stale() is None and heartbeat.problem(engine) is None
        clock.advance(TIMER_STALE + 1)  # now it has not woken for longer than the limit
        assert engine.timer_alive.stale() == TIMER_STALE + 1
        assert heartbeat.problem(engine) == "the deadline timer is not running"
        wake(engine, clock)
        clock.step(-HOUR)  # and set back: no silence either
        assert engine.timer_alive.stale() is None and heartbeat.problem(engine) is None


async def test_a_wall_clock_step_is_no_deadline_held_back_and_hides_none(write_config: ConfigWriter) -> None:
    # How long a cluster leader's due deadlines had waited for its inbox (Engine.held_back) was the
    # wall clock's move: set forward, a moment's wait was "held back for an hour" (503, no
    # heartbeat, the lease given up); set back, deadlines that could not fire were not held back
    # for as long as the step, and the leader answered ready and kept its lease while it fired none.
    async with pinged(write_config) as (engine, clock):
        asked = 0

        async def inbox_unread() -> bool:
            nonlocal asked
            asked += 1
            return False

        async def looked_again() -> None:  # the timer has run (alive), its deadlines still held
            looked = asked
            while asked == looked:
                await asyncio.sleep(0.01)

        engine.before_fire = inbox_unread
        clock.advance(2 * HOUR)  # its deadline (1 h 5 min) is due, and waits for the inbox
        timer = asyncio.create_task(engine.run_timer())
        try:
            await asyncio.wait_for(looked_again(), 10)  # held from here
            clock.step(HOUR)
            assert engine.held_back() is None and heartbeat.problem(engine) is None
            clock.step(-HOUR - 600)  # back, and still past the deadline
            clock.advance(TIMER_STALE + 1)
            await asyncio.wait_for(looked_again(), 10)
            assert engine.held_back() == TIMER_STALE + 1
            assert heartbeat.problem(engine) == heartbeat.held_words(TIMER_STALE + 1)
        finally:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
        assert engine.checks["a"].state.status is Status.UP  # nothing fired meanwhile


async def test_a_suspend_is_no_stopped_timer_as_the_monotonic_clock_stops_with_the_machine(
    write_config: ConfigWriter,
) -> None:
    # Linux's CLOCK_MONOTONIC (SystemClock.monotonic) does not count a suspend, and the timer wakes
    # within a second of the machine's: FakeClock counted it, so its tests took a suspend for a
    # timer that had stopped (503, no heartbeat, a leader's lease given up), which no machine does.
    async with pinged(write_config) as (engine, clock):
        clock.suspend(2 * HOUR)
        assert engine.timer_alive.stale() is None and heartbeat.problem(engine) is None
        clock.advance(TIMER_STALE + 1)  # awake, and the timer silent for longer than the limit
        assert engine.timer_alive.stale() == TIMER_STALE + 1


def wake_after_stall(engine: Engine, clock: FakeClock) -> None:
    """A timer wake-up as run_timer's: the clock looked at, a freeze or stall looked for, then what
    is due fired."""
    engine.watch_clock(clock.now())
    engine.watch_thaw(clock.now())
    engine.timer_alive.mark(clock.now())
    engine.fire_due(clock.now())


async def test_a_timer_stalled_again_and_again_by_a_busy_loop_does_not_put_a_deadline_off_for_ever(
    write_config: ConfigWriter,
) -> None:
    # Each stall longer than TIMER_STALE looks like a freeze, and moved every deadline due to the
    # reorder window's end after it: a server whose loop was that busy never told a miss again.
    async with pinged(write_config) as (engine, clock):
        due = clock.now() + HOUR + 300
        clock.advance(due - clock.now() - 10)
        wake(engine, clock)  # late: missed in 10 s
        for _ in range(10):  # a wake-up every 6 s: the loop too busy to run the timer sooner
            clock.advance(TIMER_STALE + 1)
            wake_after_stall(engine, clock)
        assert clock.now() > due + 2 * (TIMER_STALE + 1 + REORDER_WINDOW)
        assert (engine.checks["a"].state.status, engine.checks["a"].state.reason) == (Status.DOWN, Reason.MISSED)


async def test_a_miss_that_fell_in_a_freeze_is_told_once_the_reorder_window_after_the_thaw_passed(
    write_config: ConfigWriter,
) -> None:
    # A frozen process's deadlines are not extended by the freeze: moved to the thaw's settle, the
    # late one took its grace (5 min) along, and the miss was told that much later than 5 s.
    async with pinged(write_config) as (engine, clock):
        clock.advance(2 * HOUR)  # frozen (SIGSTOP) through the deadline: the monotonic clock ran on
        wake_after_stall(engine, clock)
        assert engine.checks["a"].state.status is Status.UP  # the pings at its door first
        clock.advance(REORDER_WINDOW)
        wake_after_stall(engine, clock)
        assert (engine.checks["a"].state.status, engine.checks["a"].state.reason) == (Status.DOWN, Reason.MISSED)


async def test_a_deadline_after_a_freeze_is_not_extended_by_the_late_one_that_fell_in_it(
    write_config: ConfigWriter,
) -> None:
    config = write_config(f'[checks.a]\nkey = "{new_key()}"\nevery = "1h"\ngrace = "3h"\n')
    clock = FakeClock()
    async with running(config, clock) as engine:
        await ping(engine, "a")
        wake(engine, clock)
        missed_at = clock.now() + 4 * HOUR
        clock.advance(2 * HOUR)  # frozen through the due time (1 h), not the miss (4 h)
        wake_after_stall(engine, clock)
        clock.advance(missed_at - clock.now() + 1)
        wake(engine, clock)
        assert (engine.checks["a"].state.status, engine.checks["a"].state.reason) == (Status.DOWN, Reason.MISSED)


async def test_a_ping_read_after_a_freeze_before_the_timer_woke_does_not_judge_a_deadline_that_fell_in_it(
    write_config: ConfigWriter,
) -> None:
    # The thawed loop may read a ping (a kept-alive connection's, a proxy's) before the timer's
    # wake-up: a retry dated after the deadline judged it missed at once, and the spooled ping that
    # met it, right behind, recovered it.
    async with pinged(write_config) as (engine, clock):
        t0 = clock.now()
        clock.advance(2 * HOUR)  # frozen (SIGSTOP): the monotonic clock ran on
        await ping(engine, "a", at=t0 + HOUR + 360)  # a next run's retry, dated after the miss (1 h 5 min)
        assert engine.checks["a"].state.status is not Status.DOWN
        await ping(engine, "a", at=t0 + HOUR - 60)  # the spooled ping that met it
        wake_after_stall(engine, clock)
        clock.advance(REORDER_WINDOW + 1)
        wake(engine, clock)
        assert engine.checks["a"].state.status is Status.UP
        await engine.writer.flush()
        assert query(engine.config, "SELECT new FROM flips WHERE new = 'down'") == []


async def test_a_suspend_does_not_count_toward_a_pending_alerts_expiry(
    receivers: Receivers,  # noqa: F811 - the fixture imported above
    aiohttp_client: AiohttpClient,
    write_config: ConfigWriter,
) -> None:
    # A suspend is a downtime too, and a downtime does not count toward an alert's expiry (a
    # restart gives it back): a down alert whose channel failed just before the laptop slept for
    # longer than expire_after expired at the wake-up, never sent, and nobody was told.
    hook = await receivers(status=503)
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast("1h"))
    clock = FakeClock()
    hf = Heartfly(await aiohttp_client(create_app(config, clock=clock)), config)
    await hf.ping(key, "/fail")
    await until(lambda: hook.hits, "the first attempt")
    clock.suspend(2 * HOUR)  # asleep, its retry due meanwhile
    hook.status = 200
    dispatcher = hf.client.app[RUNTIME].dispatcher
    assert dispatcher is not None
    dispatcher.wake()
    done = await hf.wait_alert("job", "hook", "down", lambda a: a["status"] != "pending")
    assert done["status"] == "sent"


async def test_a_suspend_while_an_attempt_is_under_way_does_not_expire_the_alert(
    receivers: Receivers,  # noqa: F811 - the fixture imported above
    aiohttp_client: AiohttpClient,
    write_config: ConfigWriter,
) -> None:
    # The laptop went to sleep with the channel's attempt under way (it had no answer yet): the
    # attempt ended at the wake-up, its retry was judged against the expiry the sleep had passed,
    # and the alert expired untried, though the suspend is given back to the pending alerts.
    hook = await receivers(status=200, hanging=True)
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast("1h"))
    clock = FakeClock()
    hf = Heartfly(await aiohttp_client(create_app(config, clock=clock)), config)
    await hf.ping(key, "/fail")
    await until(lambda: hook.hits, "the first attempt")
    clock.suspend(2 * HOUR)  # asleep with the attempt under way: it gets no answer ([alerts] timeout)
    tried = await hf.wait_alert("job", "hook", "down", lambda a: a["attempts"] == 1)
    assert tried["status"] == "pending", tried
    hook.hanging = False
    hook.release.set()
    clock.advance(10)  # the retry's time
    dispatcher = hf.client.app[RUNTIME].dispatcher
    assert dispatcher is not None
    dispatcher.wake()
    done = await hf.wait_alert("job", "hook", "down", lambda a: a["status"] != "pending")
    assert done["status"] == "sent", done


async def test_a_suspend_is_given_back_to_the_alerts_once_while_database_writes_fail(
    receivers: Receivers,  # noqa: F811 - the fixture imported above
    aiohttp_client: AiohttpClient,
    write_config: ConfigWriter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The laptop woke to a full disk: the give-back's commit failed, and the dispatcher gave it
    # again at each read, every second, each copy kept by the writer for when writes work again:
    # the alerts' expiry was extended by the sleep once per second of the outage. And it read
    # nothing meanwhile: the alerts that could go out did not.
    hook = await receivers(503, status=200)
    key = new_key()
    config = write_config(webhook("hook", hook.url) + check("job", key, ["hook"]) + fast("1h"))
    clock = FakeClock()
    app = create_app(config, clock=clock)
    hf = Heartfly(await aiohttp_client(app), config)
    await hf.ping(key, "/fail")
    await hf.wait_alert("job", "hook", "down", lambda a: a["attempts"] == 1)
    ((expires_at,),) = query(config, "SELECT expires_at FROM outbox")
    writer = app[RUNTIME].writer
    assert writer is not None
    real = writer._commit_batch  # type: ignore[attr-defined]
    tried: list[int] = []  # the give-back writes a failed commit held

    async def full_disk(writes: list[Write]) -> None:
        tried.extend(id(w) for w in writes if any("expires_at = expires_at +" in s[0] for s in w.statements))
        raise StoreError("database or disk is full")

    monkeypatch.setattr(writer, "_commit_batch", full_disk)
    clock.suspend(2 * HOUR)  # asleep, the retry due meanwhile
    dispatcher = app[RUNTIME].dispatcher
    assert dispatcher is not None
    dispatcher.wake()
    await until(lambda: len(hook.hits) == 2, "the retry, sent though its outcome cannot be stored yet")
    for _ in range(3):  # reads of the outbox, which once gave the sleep back again each
        dispatcher.wake()
        await asyncio.sleep(0.6)
    await until(lambda: len(tried) >= 3, "the failing commits' retries")
    monkeypatch.setattr(writer, "_commit_batch", real)
    await writer.flush()
    assert len(set(tried)) == 1
    assert query(config, "SELECT expires_at, status FROM outbox") == [(expires_at + 2 * HOUR, "sent")]
