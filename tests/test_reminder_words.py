"""What a reminder says: the cause of the down it repeats, not only that it is still down."""

from __future__ import annotations

import json

from heartfly.core.clock import FakeClock
from heartfly.core.states import Event, Kind
from heartfly.store.pingrecord import PingRecord
from tests.conftest import ConfigWriter
from tests.storeutil import query
from tests.test_maintenance import MONDAY_2AM
from tests.test_maintenance_holds import job_check
from tests.test_restart import run_timer, running


async def test_a_reminder_says_what_took_the_check_down(write_config: ConfigWriter) -> None:
    # The engineer asleep through the down alert is woken by the reminder: it said "What happened:
    # still down", and the exit status (or a fan-in's missing workers) was in the first alert only.
    config = write_config(job_check(extra='repeat = "1m"\n'))
    clock = FakeClock(MONDAY_2AM)
    async with running(config, clock) as engine:
        now = clock.now()
        await engine.record(engine.checks["job"], PingRecord(Event(Kind.FAIL, now, exit_status=3), received_at=now))
        run_timer(engine, clock, 61)
        await engine.writer.flush()
    rows = query(config, "SELECT event, payload FROM outbox ORDER BY id")
    assert [event for event, _ in rows] == ["down", "reminder"]
    assert json.loads(rows[1][1])["detail"] == json.loads(rows[0][1])["detail"] == "failed with exit status 3"


async def test_a_reminder_after_a_restart_that_applied_held_pings_says_what_took_the_check_down(
    write_config: ConfigWriter,
) -> None:
    # min_runtime: a success waits for a start that may be on its way, and the failures after it
    # wait behind it. Stopped within the reorder window: the start applies them (the failure with
    # exit status 3 takes the check down, told), each step from the one before. The step after the
    # down (the second failure) came from a state that had not heard what took it down: the
    # reminders said "still down" again.
    config = write_config(job_check(extra='min_runtime = "1m"\nrepeat = "1m"\n'))
    clock = FakeClock(MONDAY_2AM)
    async with running(config, clock) as engine:
        for exit_status in (0, 3, 4):
            now = clock.now()
            event = Event(Kind.SUCCESS if exit_status == 0 else Kind.FAIL, now, exit_status=exit_status)
            await engine.record(engine.checks["job"], PingRecord(event, received_at=now))
            clock.advance(0.5)
        assert len(engine.checks["job"].state.waiting) == 3  # all held
    clock.advance(10)
    async with running(config, clock) as engine:
        run_timer(engine, clock, 61)
        await engine.writer.flush()
    rows = query(config, "SELECT event, payload FROM outbox ORDER BY id")
    assert [event for event, _ in rows] == ["down", "reminder"]
    assert json.loads(rows[1][1])["detail"] == json.loads(rows[0][1])["detail"] == "failed with exit status 3"
