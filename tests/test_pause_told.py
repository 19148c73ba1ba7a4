"""What an operator's pause and resume leave told: the end of a down its channels heard of."""

from __future__ import annotations

import json

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.states import Kind, Status
from heartfly.notify.message import Alert, subject, text
from heartfly.server.engine import Engine
from tests.conftest import ConfigWriter
from tests.storeutil import query
from tests.test_maintenance import MONDAY_2AM
from tests.test_maintenance_holds import job_check
from tests.test_restart import ping, run_timer, running


async def failed_and_paused(engine: Engine, clock: FakeClock) -> None:
    """The job fails (its down told), and the on-call engineer pauses it 10 minutes later."""
    await ping(engine, "job", Kind.FAIL)
    clock.advance(10 * 60)
    await engine.pause(engine.checks["job"])


async def test_a_check_paused_while_down_and_resumed_tells_its_recovery_with_how_long_it_was_down(
    write_config: ConfigWriter,
) -> None:
    # Failed at 03:00, told; the on-call engineer paused it, ran the job by hand, resumed it at
    # 03:40. The check was up again and nobody was told: the incident the down alert opened at a
    # receiver stayed open for good, and the engineer was left unsure it had been seen to recover.
    config = write_config(job_check())
    clock = FakeClock(MONDAY_2AM + 3600)
    async with running(config, clock) as engine:
        await failed_and_paused(engine, clock)
        clock.advance(20 * 60)
        await ping(engine, "job", Kind.SUCCESS)  # the run by hand, while paused: recorded only
        clock.advance(10 * 60)
        await engine.resume(engine.checks["job"])
        assert engine.checks["job"].state.status is Status.UP
        await engine.writer.flush()
    rows = query(config, "SELECT event, channel, payload FROM outbox ORDER BY id")
    assert [(event, channel) for event, channel, _ in rows] == [("down", "journal"), ("recovery", "journal")]
    recovery = json.loads(rows[1][2])
    assert recovery["down_for"] == 40 * 60 and recovery["detail"] == "resumed by an operator"


async def test_a_check_paused_while_up_and_resumed_tells_nothing(write_config: ConfigWriter) -> None:
    config = write_config(job_check())
    clock = FakeClock(MONDAY_2AM)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.SUCCESS)
        await engine.pause(engine.checks["job"])
        clock.advance(60)
        await engine.resume(engine.checks["job"])
        await engine.writer.flush()
    assert query(config, "SELECT event FROM outbox") == []


async def test_a_failure_that_resumes_a_check_paused_while_down_tells_a_down_with_no_recovery_before_it(
    write_config: ConfigWriter,
) -> None:
    # resume_on_ping: the job's next failure ends the pause and takes the check down again at once;
    # a recovery told between the two would be a false "back up".
    config = write_config(job_check(extra="resume_on_ping = true\n"))
    clock = FakeClock(MONDAY_2AM + 3600)
    async with running(config, clock) as engine:
        await failed_and_paused(engine, clock)
        clock.advance(10 * 60)
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.status is Status.DOWN
        await engine.writer.flush()
    assert [event for (event,) in query(config, "SELECT event FROM outbox ORDER BY id")] == ["down", "down"]


async def test_the_recovery_a_resume_tells_says_the_check_is_watched_again_not_back_up(
    write_config: ConfigWriter,
) -> None:
    # Failed at 03:00, told; paused, and resumed at 03:30 with the job not run since: the resume
    # makes the check `up` (watched again), but its job has not been seen to work. "job is back
    # up", "Recovered at" told the on-call engineer it had recovered, which nothing showed.
    config = write_config(job_check())
    clock = FakeClock(MONDAY_2AM + 3600)
    async with running(config, clock) as engine:
        await failed_and_paused(engine, clock)
        clock.advance(20 * 60)
        await engine.resume(engine.checks["job"])
        await engine.writer.flush()
    rows = query(config, "SELECT event, key, payload FROM outbox ORDER BY id")
    assert [event for event, _, _ in rows] == ["down", "recovery"]
    alert = Alert(rows[1][1], rows[1][0], json.loads(rows[1][2]), None, "https://hb.example.org/checks/job")
    assert subject(alert) == "[UP] job is watched again: resumed while down"
    words = text(alert)
    assert "Resumed at: " in words and "Recovered at" not in words and "back up" not in words
    assert "What happened: resumed by an operator" in words and "Was down for: 30 min" in words


async def test_a_failure_that_resumes_a_check_paused_while_down_but_does_not_take_it_down_tells_it_watched_again(
    write_config: ConfigWriter,
) -> None:
    # failures_before_alert = 2: the failure that resumes it is the first of a new streak. The
    # recovery says what is known, watched again (not "back up"), and the next failure is the down.
    config = write_config(job_check(extra="resume_on_ping = true\nfailures_before_alert = 2\n"))
    clock = FakeClock(MONDAY_2AM + 3600)
    async with running(config, clock) as engine:
        for _ in range(2):
            await ping(engine, "job", Kind.FAIL)
            clock.advance(60)
        await engine.pause(engine.checks["job"])
        clock.advance(10 * 60)
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.status is Status.UP
        clock.advance(60)
        await ping(engine, "job", Kind.FAIL)
        run_timer(engine, clock, 6)  # past the reorder window it is held for
        await engine.writer.flush()
    rows = query(config, "SELECT event, key, payload FROM outbox ORDER BY id")
    assert [event for event, _, _ in rows] == ["down", "recovery", "down"]
    alert = Alert(rows[1][1], rows[1][0], json.loads(rows[1][2]), None, "https://hb.example.org/checks/job")
    assert alert.headline() == "job is watched again: resumed while down"


@pytest.mark.both_stores  # what was told, and when the down began, are kept in the stored state
async def test_a_check_paused_while_down_tells_its_recovery_to_the_channels_told_after_a_restart_that_changed_them(
    write_config: ConfigWriter,
) -> None:
    # Failed at 03:00 (told to journal), paused at 03:10; Heartfly restarted with the check on
    # another channel; resumed at 03:40: the channel told the down hears that it is over.
    config = write_config(job_check())
    clock = FakeClock(MONDAY_2AM + 3600)
    async with running(config, clock) as engine:
        await failed_and_paused(engine, clock)
    clock.advance(30 * 60)
    other = '[channels.other]\ntype = "log"\n'
    config = write_config(other + job_check().replace('channels = ["journal"]', 'channels = ["other"]'))
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        await engine.resume(engine.checks["job"])
        await engine.writer.flush()
    rows = query(config, "SELECT event, channel, payload FROM outbox ORDER BY id")
    assert [(event, channel) for event, channel, _ in rows] == [("down", "journal"), ("recovery", "journal")]
    assert json.loads(rows[1][2])["down_for"] == 40 * 60
