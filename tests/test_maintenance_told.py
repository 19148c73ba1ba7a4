"""What a maintenance window leaves told: a recovery of a down told before the window began."""

from __future__ import annotations

import json

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.config import load_config
from heartfly.core.states import Kind, Status
from heartfly.store import rows as store
from tests.conftest import ConfigWriter, new_key
from tests.proc import heartfly
from tests.storeutil import query
from tests.test_maintenance import MONDAY_2AM
from tests.test_maintenance_holds import _events, _patching, job_check
from tests.test_restart import ping, run_timer, running

JOB_KEY = new_key()


async def test_a_check_told_down_before_a_held_window_and_back_within_it_has_its_recovery_told(
    write_config: ConfigWriter,
) -> None:
    # Down at 01:50, told then; back at 02:10, within the window. The summary tells only the checks
    # still down, so a recovery held for it was never told: a receiver kept the check down for good.
    config = write_config(job_check() + _patching())
    clock = FakeClock(MONDAY_2AM - 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        await engine.writer.flush()
        assert _events(config) == ["down"]
        clock.advance(20 * 60)
        await ping(engine, "job", Kind.SUCCESS)
        assert engine.checks["job"].state.status is Status.UP
        clock.advance(60 * 60)  # 03:10: the window is over
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["down", "recovery"]


async def test_a_check_that_goes_down_and_back_within_a_held_window_tells_nothing(
    write_config: ConfigWriter,
) -> None:
    config = write_config(job_check() + _patching())
    clock = FakeClock(MONDAY_2AM + 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        clock.advance(10 * 60)
        await ping(engine, "job", Kind.SUCCESS)
        clock.advance(60 * 60)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == []


async def test_a_dropping_window_tells_the_recovery_of_a_check_told_down_before_it(
    write_config: ConfigWriter,
) -> None:
    # It dropped it, as it drops what the maintenance breaks: the down told before the window
    # stayed open for good at its receivers (an incident a webhook opened), as with a hold window.
    config = write_config(job_check() + _patching(mode="drop"))
    clock = FakeClock(MONDAY_2AM - 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        clock.advance(20 * 60)
        await ping(engine, "job", Kind.SUCCESS)
        clock.advance(60 * 60)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["down", "recovery"]


async def test_the_recovery_after_a_dropping_window_of_a_down_it_dropped_is_not_told(
    write_config: ConfigWriter,
) -> None:
    # Down at 02:10, dropped; back at 03:10, after the window: a recovery of a down nobody heard of.
    config = write_config(job_check() + _patching(mode="drop"))
    clock = FakeClock(MONDAY_2AM + 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        clock.advance(60 * 60)
        await ping(engine, "job", Kind.SUCCESS)
        assert engine.checks["job"].state.status is Status.UP
        await engine.writer.flush()
    assert _events(config) == []


async def test_the_recovery_after_a_dropping_window_goes_to_the_channels_a_reminder_told_since(
    write_config: ConfigWriter,
) -> None:
    config = write_config(job_check(extra='repeat = "30m"\n') + _patching(mode="drop"))
    clock = FakeClock(MONDAY_2AM + 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)  # 02:10: dropped
        run_timer(engine, clock, 65 * 60)  # the 02:40 reminder dropped, the 03:10 one told
        await ping(engine, "job", Kind.SUCCESS)
        await engine.writer.flush()
    assert _events(config) == ["reminder", "recovery"]


@pytest.mark.both_stores  # a failover's new leader reads the states and marks as a start does
async def test_the_recovery_of_a_down_a_dropping_window_dropped_is_not_told_after_a_restart_either(
    write_config: ConfigWriter,
) -> None:
    config = write_config(job_check() + _patching(mode="drop"))
    clock = FakeClock(MONDAY_2AM + 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
    clock.advance(60 * 60)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        await ping(engine, "job", Kind.SUCCESS)
        assert engine.checks["job"].state.status is Status.UP
        await engine.writer.flush()
    assert _events(config) == []


@pytest.mark.both_stores  # a failover's new leader reads the states and marks as a start does
async def test_a_window_a_reload_added_that_ended_while_stopped_is_summarized_as_its_occurrence(
    write_config: ConfigWriter, caplog: pytest.LogCaptureFixture
) -> None:
    # Its done mark was kept in memory only: the next start took the window for new, its hold for
    # one of a window "removed or changed", and told it as ended at the start, not at 03:00.
    clock = FakeClock(MONDAY_2AM - 3600)
    config = write_config(job_check())
    async with running(config, clock) as engine:
        config = write_config(job_check() + _patching())
        await engine.apply_config(load_config(config.path))
        clock.advance(70 * 60)  # 02:10
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
        clock.advance(20 * 60)  # 02:30: stopped
    clock.advance(60 * 60)  # 03:30
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    [(event, payload)] = query(config, "SELECT event, payload FROM outbox")
    assert event == "maintenance" and json.loads(payload)["ended_at"] == MONDAY_2AM + 3600, payload
    assert "was removed or changed" not in caplog.text


async def test_a_reload_that_makes_a_held_window_drop_tells_what_it_held_at_once(
    write_config: ConfigWriter,
) -> None:
    # docs/alerts.md: a held alert is never lost to an edit of the file, this one included.
    config = write_config(job_check() + _patching())
    clock = FakeClock(MONDAY_2AM + 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)  # 02:10: held
        clock.advance(300)
        config = write_config(job_check() + _patching(mode="drop"))
        await engine.apply_config(load_config(config.path))
        await engine.writer.flush()
        assert _events(config) == ["maintenance"]
        clock.advance(60 * 60)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["maintenance"]


def _two_channels(channels: str, extra: str = "") -> str:
    """A check `job` alerting the log channels `channels` of two (`first`, `second`)."""
    job = f'[checks.job]\nkey = "{JOB_KEY}"\nevery = "7d"\n{extra}channels = {channels}\n'
    return '[channels.first]\ntype = "log"\n[channels.second]\ntype = "log"\n' + job


async def test_the_recovery_within_a_held_window_of_a_down_told_before_it_goes_to_the_channels_told_the_down(
    write_config: ConfigWriter,
) -> None:
    # docs/alerts.md: a recovery goes to the channels told the check is down. Told `first` at 01:50;
    # a reload gives it `second` too; back at 02:10, within the window: `first` alone hears it.
    config = write_config(_two_channels('["first"]') + _patching())
    clock = FakeClock(MONDAY_2AM - 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        config = write_config(_two_channels('["first", "second"]') + _patching())
        await engine.apply_config(load_config(config.path))
        clock.advance(20 * 60)
        await ping(engine, "job", Kind.SUCCESS)
        clock.advance(60 * 60)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert query(config, "SELECT event, channel FROM outbox ORDER BY id") == [
        ("down", "first"),
        ("recovery", "first"),
    ]


async def test_a_check_told_down_before_a_held_window_reminded_and_back_within_it_tells_one_recovery_alone(
    write_config: ConfigWriter,
) -> None:
    # Down at 01:50 (told), its 02:20 reminder within the window (held), back at 02:40: one
    # recovery, as it comes, and no summary at 03:00 (it is not down then).
    config = write_config(job_check(extra='repeat = "30m"\n') + _patching())
    clock = FakeClock(MONDAY_2AM - 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        run_timer(engine, clock, 40 * 60)  # to 02:30: the 02:20 reminder within the window
        await ping(engine, "job", Kind.SUCCESS)
        run_timer(engine, clock, 40 * 60)  # to 03:10
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["down", "recovery"]


async def test_a_checks_history_shows_the_maintenance_summary_that_told_its_down(write_config: ConfigWriter) -> None:
    # Down at 02:10, held; the summary at 03:00 is the only down alert the check gets. Its history
    # (and the check page and alerts API, which read the same) said "Alerts: none": the engineer
    # the summary woke could not see it had been told, nor whether the summary was delivered.
    config = write_config(job_check() + _patching())
    clock = FakeClock(MONDAY_2AM + 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        clock.advance(60 * 60)  # 03:10: the window is over, the check still down
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["maintenance"]
    done = heartfly("history", "job", "-c", str(config.path))
    assert done.returncode == 0, done.stderr
    alerts = done.stdout.split("Alerts (newest first):\n", 1)[1].split("\n\n", 1)[0]
    assert "maintenance via journal" in alerts and "none" not in alerts


async def test_a_check_made_under_a_deleted_ones_name_does_not_list_the_summaries_that_named_the_deleted_one(
    write_config: ConfigWriter,
) -> None:
    # "job" was told down by the 03:00 summary, then deleted (through the API: its row goes by a
    # tombstone name), and a new check made under its name. The summary names "job": the new
    # check's history listed it among its alerts, a down told of a check that did not exist yet.
    config = write_config(job_check() + _patching())
    clock = FakeClock(MONDAY_2AM + 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        clock.advance(60 * 60)
        engine.close_windows(clock.now())
        await engine.writer.submit(store.Write(statements=[store.tombstone_statement("job")]))
    assert _events(config) == ["maintenance"]
    clock.advance(60 * 60)
    async with running(config, clock) as engine:  # the new "job": a row, and a history, of its own
        await engine.writer.flush()
    assert len(query(config, "SELECT id FROM checks")) == 2
    done = heartfly("history", "job", "-c", str(config.path))
    assert done.returncode == 0, done.stderr
    alerts = done.stdout.split("Alerts (newest first):\n", 1)[1].split("\n\n", 1)[0]
    assert "maintenance" not in alerts and "none" in alerts
