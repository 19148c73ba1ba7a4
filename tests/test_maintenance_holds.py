"""Maintenance windows' held alerts across starts, reloads, reminders, overlapping windows and held
pings: told once, never lost (CheckState.window_hold; windows.close and windows.release)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.config import Config, load_config
from heartfly.core.states import CheckState, Kind, Status
from heartfly.server import windows
from heartfly.server.engine import Engine
from heartfly.store import rows as store
from tests.conftest import ConfigWriter, new_key
from tests.storeutil import query
from tests.test_maintenance import MONDAY_2AM
from tests.test_pipelines import PIPELINE
from tests.test_restart import ping, run_timer, running

DAY = 86400.0


def _events(config: Config) -> list[str]:
    return [e for (e,) in query(config, "SELECT event FROM outbox ORDER BY id")]


def job_check(every: str = "7d", extra: str = "") -> str:
    """A check `job` alerting a log channel."""
    job = f'[checks.job]\nkey = "{new_key()}"\nevery = "{every}"\n{extra}channels = ["journal"]\n'
    return '[channels.journal]\ntype = "log"\n' + job


def _patching(name: str = "patching", mode: str = "hold", start: str = "02:00") -> str:
    return (
        f'[[maintenance]]\nname = "{name}"\nstart = 2026-12-07T{start}:00Z\nduration = "1h"\n'
        f'checks = ["job"]\nalerts = "{mode}"\n'
    )


async def start_and_close(config: Config, clock: FakeClock) -> None:
    """A start that reads every state, then its first housekeeping round."""
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        engine.close_windows(clock.now())
        await engine.writer.flush()


async def as_stored_before_holds(engine: Engine, name: str) -> None:
    """The check's state stored without its hold, and no mark of holds kept: as a version before."""
    check = engine.checks[name]
    check.state = dataclasses.replace(check.state, window_hold=None, window_end=0.0)
    await engine.writer.submit(store.Write(state=engine._mark_stored(check)))
    await engine.writer.submit(store.Write(statements=[store.delete_meta_statement(windows.HOLDS_META)]))


async def restart_then_close_after(config: Config, clock: FakeClock, seconds: float) -> None:
    """A start that reads every state, then a housekeeping round `seconds` later."""
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        clock.advance(seconds)
        engine.close_windows(clock.now())
        await engine.writer.flush()


async def with_an_early_round(engine: Engine, clock: FakeClock) -> None:
    """A start's first housekeeping round before every state is read, then the reading, the next
    round and the commits."""
    engine.close_windows(clock.now())
    await engine.finish_load(lambda: None)
    engine.close_windows(clock.now())
    await engine.writer.flush()


async def test_a_hold_of_an_occurrence_that_ended_while_stopped_is_told_at_a_start_within_the_next(
    write_config: ConfigWriter,
) -> None:
    # A daily window 02:00-04:00. job fails Monday 02:10 (held for Monday's summary); Heartfly stops
    # at 03:30 and starts Tuesday 02:30, during Tuesday's occurrence. The start's release (before its
    # first housekeeping round) must not take Tuesday's occurrence for Monday's made longer: a
    # recovery within Tuesday's window would be silenced, and the down never told.
    clock = FakeClock(MONDAY_2AM + 600)
    body = job_check()
    window = '[[maintenance]]\nname = "nightly"\ncron = "0 2 * * *"\nduration = "2h"\nchecks = ["job"]\n'
    config = write_config(body + window)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "nightly"
        clock.advance(80 * 60)  # 03:30
        engine.close_windows(clock.now())
    assert _events(config) == []
    clock.advance(DAY - 60 * 60)  # Tuesday 02:30
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)  # the timer task: _loaded -> release_holds
        engine.close_windows(clock.now())  # the first housekeeping round
        await engine.writer.flush()
        told = _events(config)
        clock.advance(30 * 60)  # Tuesday 03:00: it recovers, within Tuesday's window (told: its down was)
        await ping(engine, "job", Kind.SUCCESS)
        clock.advance(60 * 60 + 1)  # after Tuesday 04:00
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["maintenance", "recovery"], "Monday's held down alert was never told"
    assert told, "Monday's summary comes at the start"


async def test_a_reminder_held_by_a_window_does_not_put_a_check_down_before_it_into_the_summary(
    write_config: ConfigWriter,
) -> None:
    # docs: "one that was already down when it began was alerted then": a reminder held during the
    # window holds nothing new of the down.
    clock = FakeClock(MONDAY_2AM - 600)
    body = job_check(extra='repeat = "15m"\n')
    window = '[[maintenance]]\nname = "patching"\nstart = 2026-12-07T02:00:00Z\nduration = "1h"\nchecks = ["job"]\n'
    config = write_config(body + window)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)  # 01:50: alerted now
        await engine.writer.flush()
        assert _events(config) == ["down"]
        run_timer(engine, clock, 20 * 60)  # 02:10: the 02:05 reminder is held by the window
        clock.advance(60 * 60)  # 03:10: the window is over
        engine.close_windows(clock.now())
        await engine.writer.flush()
    events = _events(config)
    assert "maintenance" not in events, events


async def test_a_reload_that_ends_a_hold_and_edits_the_check_does_not_tell_it_again_after_a_restart(
    write_config: ConfigWriter,
) -> None:
    # The reload's rows for an edited check (its state before release_holds) must not be stored
    # after release's: the hold would stay, and the next start tell the summary a second time.
    clock = FakeClock(MONDAY_2AM)
    key = new_key()
    job = f'[channels.journal]\ntype = "log"\n[checks.job]\nkey = "{key}"\nevery = "1h"\nchannels = ["journal"]\n'
    window = '[[maintenance]]\nname = "patching"\nstart = 2026-12-07T01:59:00Z\nduration = "1h"\ntags = ["db"]\n'
    config = write_config(job + 'tags = ["db"]\n' + window)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
        clock.advance(60)
        config = write_config(job + window)  # the check leaves the window by its own tags
        await engine.apply_config(load_config(config.path))
        await engine.writer.flush()
        assert engine.checks["job"].state.window_hold is None
        assert _events(config) == ["maintenance"]
    clock.advance(60)
    await start_and_close(config, clock)
    assert _events(config) == ["maintenance"], "told a second time"


async def test_a_hold_made_before_the_upgrade_is_still_told(write_config: ConfigWriter) -> None:
    # A state stored by a version before holds were kept has no window_hold: a window under way
    # during the upgrade's restart (or one that ended while it was stopped) must still tell it.
    clock = FakeClock(MONDAY_2AM + 600)
    body = job_check()
    window = '[[maintenance]]\nname = "patching"\nstart = 2026-12-07T02:00:00Z\nduration = "1h"\nchecks = ["job"]\n'
    config = write_config(body + window)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        await as_stored_before_holds(engine, "job")
    clock.advance(60 * 60)  # ended while stopped
    await start_and_close(config, clock)
    assert _events(config) == ["maintenance"], "the held alert was lost at the upgrade"


async def test_a_reminder_in_an_overlapping_drop_window_does_not_void_the_hold(write_config: ConfigWriter) -> None:
    clock = FakeClock(MONDAY_2AM + 600)
    body = job_check(extra='repeat = "15m"\n')
    windows = (
        '[[maintenance]]\nname = "freeze"\nstart = 2026-12-07T02:30:00Z\nduration = "2h"\nalerts = "drop"\n'
        '[[maintenance]]\nname = "patching"\nstart = 2026-12-07T02:00:00Z\nduration = "1h"\n'
    )
    config = write_config(body + windows)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)  # 02:10: held by patching
        assert engine.checks["job"].state.window_hold == "patching"
        run_timer(engine, clock, 35 * 60)  # 02:45: the 02:25 reminder held, the 02:40 one dropped by freeze
        clock.advance(20 * 60)  # 03:05: patching is over
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["maintenance"], "patching's summary lost job"


async def test_a_hold_set_by_one_of_several_held_pings_applied_at_a_start_survives_the_next_step(
    write_config: ConfigWriter,
) -> None:
    # engine._apply_held assigns each step's state in turn, each made from the one before: the hold
    # the down step's change gave must not be lost with the next step's state.
    clock = FakeClock(MONDAY_2AM + 600)
    body = job_check(extra='min_runtime = "1m"\n')
    window = '[[maintenance]]\nname = "patching"\nstart = 2026-12-07T02:00:00Z\nduration = "1h"\nchecks = ["job"]\n'
    config = write_config(body + window)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.SUCCESS)  # held for the reorder window (its start may be on its way)
        clock.advance(0.2)
        await ping(engine, "job", Kind.FAIL)  # queued behind it
        clock.advance(0.2)
        await ping(engine, "job", Kind.START)  # queued behind it
        assert len(engine.checks["job"].state.waiting) >= 2, engine.checks["job"].state.waiting
    clock.advance(30)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        st = engine.checks["job"].state
        assert st.status.value == "down", st.status
        assert st.window_hold == "patching", "the hold was overwritten by the step after the down"
        clock.advance(60 * 60)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["maintenance"]


async def test_a_window_renamed_during_it_tells_its_held_alert_once_across_a_restart(
    write_config: ConfigWriter,
) -> None:
    clock = FakeClock(MONDAY_2AM + 600)
    job = job_check()
    config = write_config(job + _patching())
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)  # 02:10: held by patching
        clock.advance(300)
        config = write_config(job + _patching("db-patching"))  # renamed: the old one's hold is told now
        await engine.apply_config(load_config(config.path))
        await engine.writer.flush()
    assert _events(config) == ["maintenance"]
    clock.advance(300)  # 02:20: a restart, still within the window
    await restart_then_close_after(config, clock, 3600)
    assert _events(config) == ["maintenance"], "job's down told a second time (adopted by the renamed window)"


async def test_a_down_a_drop_window_dropped_stays_untold_by_an_overlapping_hold_window_after_a_restart(
    write_config: ConfigWriter,
) -> None:
    # Both under way; the first in the file (drop) decides: job's down is dropped. Without a
    # restart nothing is told; with one, the start adopts it for the hold window's summary.
    clock = FakeClock(MONDAY_2AM + 600)
    config = write_config(job_check() + _patching("freeze", "drop") + _patching())
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold is None
    clock.advance(60)
    await restart_then_close_after(config, clock, 3600)
    assert _events(config) == [], "a dropped down alert was told by the start's adopt rule"


async def test_a_down_told_while_no_window_covered_it_is_not_told_again_after_a_restart(
    write_config: ConfigWriter,
) -> None:
    # job fails at 02:10 while patching covers only "other": alerted at once. A reload makes the
    # window cover job too; a restart during the window adopts job's down for the summary.
    clock = FakeClock(MONDAY_2AM + 600)
    job = job_check()
    window = _patching().replace('checks = ["job"]', 'tags = ["db"]')
    config = write_config(job + window)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        clock.advance(60)
        config = write_config(job + 'tags = ["db"]\n' + window)
        await engine.apply_config(load_config(config.path))
        await engine.writer.flush()
    assert _events(config) == ["down"]
    clock.advance(60)
    await restart_then_close_after(config, clock, 3600)
    assert _events(config) == ["down"], "job's down told twice"


async def test_a_first_housekeeping_round_before_the_states_are_all_read_keeps_a_pre_upgrade_hold(
    write_config: ConfigWriter,
) -> None:
    # As test_a_hold_made_before_the_upgrade_is_still_told, but in the order a start with unread
    # states can take: housekeeping's first round (close_windows) runs before finish_load's end.
    clock = FakeClock(MONDAY_2AM + 600)
    config = write_config(job_check() + _patching())
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        await as_stored_before_holds(engine, "job")
    clock.advance(3600)  # ended while stopped
    async with running(config, clock) as engine:
        await with_an_early_round(engine, clock)
    assert _events(config) == ["maintenance"], "the held alert was lost at the upgrade"


async def test_a_window_made_drop_while_stopped_tells_its_held_alert_though_housekeeping_comes_first(
    write_config: ConfigWriter,
) -> None:
    # release() tells a hold whose window is no longer a `hold` one (as a reload does); close()
    # clears it silently for a `drop` window. Which runs first at a start is a race.
    clock = FakeClock(MONDAY_2AM + 600)
    job = job_check()
    config = write_config(job + _patching())
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
    clock.advance(3600)
    config = write_config(job + _patching(mode="drop"))
    async with running(config, clock) as engine:
        await with_an_early_round(engine, clock)
    with_release_first = ["maintenance"]  # what the other order gives (release: an orphan, told now)
    assert _events(config) == with_release_first, "the held alert was lost"


async def test_a_folded_step_is_not_adopted_at_a_restart(
    write_config: ConfigWriter,
) -> None:
    clock = FakeClock(MONDAY_2AM - 60)
    window = '[[maintenance]]\nname = "patching"\nstart = 2026-12-07T02:00:00Z\nduration = "1h"\n'
    body = PIPELINE.format(k1=new_key(), k2=new_key(), k3=new_key()).replace(
        'type = "webhook"\nurl = "http://127.0.0.1:9/hook"', 'type = "log"'
    )
    config = write_config(body + window)
    async with running(config, clock) as engine:
        await ping(engine, "extract", Kind.START)  # 01:59
        clock.advance(30)
        await ping(engine, "extract", Kind.FAIL)  # 01:59:30: alerted (before the window)
        clock.advance(600)  # 02:09:30
        engine.fire_due(clock.now())  # transform misses its 10 min (02:09): folded into extract's alert
        assert engine.checks["transform"].state.folded
    clock.advance(300)  # a restart during the window
    await restart_then_close_after(config, clock, 3600)
    payloads = [json.loads(p) for (p,) in query(config, "SELECT payload FROM outbox WHERE event = 'maintenance'")]
    assert payloads == [], f"the folded step told as down by the summary: {payloads}"


async def test_a_check_taken_out_of_the_file_while_held_is_not_told_when_it_comes_back(
    write_config: ConfigWriter,
) -> None:
    clock = FakeClock(MONDAY_2AM + 600)
    job = job_check()
    config = write_config(job + _patching())
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
        other = f'[checks.other]\nkey = "{new_key()}"\nevery = "1h"\n'
        await engine.apply_config(load_config(write_config(_patching().replace('["job"]', '["other"]') + other).path))
        clock.advance(2 * 3600)  # the window is over; then the check comes back
        engine.close_windows(clock.now())
        await engine.apply_config(load_config(write_config(job + _patching()).path))
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == []


async def test_a_check_taken_out_while_stopped_and_held_is_not_told_when_it_comes_back(
    write_config: ConfigWriter,
) -> None:
    # As at a reload: the hold goes with the check, not told as a late surprise when it comes back.
    clock = FakeClock(MONDAY_2AM + 600)
    job = job_check()
    other = f'[checks.other]\nkey = "{new_key()}"\nevery = "1h"\n'
    config = write_config(job + _patching())
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
    clock.advance(60)
    config = write_config(_patching().replace('["job"]', '["other"]') + other)  # job removed while stopped
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        clock.advance(2 * 3600)
        engine.close_windows(clock.now())
        await engine.apply_config(load_config(write_config(job + _patching()).path))  # job comes back
        clock.advance(1)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == []


async def test_a_down_replayed_when_a_check_comes_back_in_a_hold_window_is_told_at_its_end(
    write_config: ConfigWriter,
) -> None:
    # Taken out while stopped with failures unstored; back (counting fewer failures) in the window:
    # the replay takes it down now, a hold of its own, not one that went with it.
    ka, kb = new_key(), new_key()
    chan = '[channels.journal]\ntype = "log"\n'
    a3 = f'[checks.a]\nkey = "{ka}"\nevery = "1h"\nfailures_before_alert = 3\nchannels = ["journal"]\n'
    b = f'[checks.b]\nkey = "{kb}"\nevery = "1h"\nchannels = ["journal"]\n'
    both = write_config(chan + a3 + b + _patching().replace('["job"]', '["a"]'))
    only_b = write_config(chan + b, name="b.toml")
    clock = FakeClock(MONDAY_2AM - 600)
    async with running(both, clock, clean=False) as engine:
        await ping(engine, "a")
        clock.advance(5)
        await ping(engine, "a", Kind.FAIL)
        await ping(engine, "a", Kind.FAIL)  # unstored: the crash comes before the lazy checkpoint
    async with running(only_b, clock) as engine:  # a removed while stopped
        await ping(engine, "b")
    clock.advance(900)  # 02:05, within the window
    back = write_config(chan + a3.replace("= 3", "= 2") + b + _patching().replace('["job"]', '["a"]'), name="back.toml")
    async with running(only_b, clock) as engine:
        await engine.finish_load(lambda: None)
        await engine.apply_config(load_config(back.path))  # a returns; its replayed 2nd failure takes it down now
        assert engine.checks["a"].state.status is Status.DOWN
        clock.advance(3600)  # past the window's end: its summary tells what it held
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(both) == ["maintenance"]


async def test_a_down_held_after_the_clock_is_set_back_into_a_window_is_told_when_it_ends_again(
    write_config: ConfigWriter,
) -> None:
    # The clock ran 20 minutes fast: the window "ended" at 03:00 by it, and the 03:10 round marked
    # it done. Set back to 02:50, the window is under way again and holds a down; its end, again
    # at 03:00, lies before the mark: the summary must still come, not wait for a reload.
    clock = FakeClock(MONDAY_2AM + 70 * 60)  # 03:10, fast
    config = write_config(job_check() + _patching())
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        engine.close_windows(clock.now())
        clock.advance(-20 * 60)  # 02:50: corrected
        engine.close_windows(clock.now())
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
        for _ in range(3):  # 03:00, 03:10, 03:20
            clock.advance(10 * 60 + 1)
            engine.close_windows(clock.now())
        await engine.writer.flush()
        assert _events(config) == ["maintenance"], "the held down alert was never told"


@pytest.mark.parametrize("timer_first", [True, False], ids=["timer-first", "summary-first"])
async def test_a_reminder_of_a_held_down_comes_repeat_after_the_summary_that_tells_it(
    write_config: ConfigWriter, timer_first: bool
) -> None:
    # docs/alerts.md: a reminder comes `repeat` after the last down alert, and a held window's
    # summary is the down alert of the checks it lists. job goes down at 02:00 inside the window
    # (held); its reminder, due at 03:00 as counted from that held down, must neither come before
    # the summary (the window is over, its round not yet come) nor just after it.
    clock = FakeClock(MONDAY_2AM - 3600)
    config = write_config(job_check(every="1h", extra='grace = "0s"\nrepeat = "1h"\n') + _patching())
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        await ping(engine, "job", Kind.SUCCESS)  # 01:00: due at 02:00
        clock.advance(3600.05)
        engine.fire_due(clock.now())  # 02:00:00.05: down, held
        assert engine.checks["job"].state.window_hold == "patching"
        clock.advance(3600.02)  # 03:00:00.07: the window is over; the reminder due since .05
        rounds: list[Callable[[float], object]] = [engine.fire_due, engine.close_windows]
        for fire in rounds if timer_first else rounds[::-1]:
            fire(clock.now())
        run_timer(engine, clock, 30 * 60)
        await engine.writer.flush()
        assert _events(config) == ["maintenance"]
        run_timer(engine, clock, 30 * 60 + 1)  # an hour after the summary
        await engine.writer.flush()
        assert _events(config) == ["maintenance", "reminder"]


async def test_a_held_down_that_came_back_within_the_window_says_nothing_when_its_ping_is_replayed_after_it(
    write_config: ConfigWriter,
) -> None:
    # Heartfly's own host is patched in the window: job fails at 02:10 (held), Heartfly stops at
    # 02:30, job succeeds at 02:50 (spooled by `heartfly run`), Heartfly is back at 03:10 and the
    # success is replayed before the summary. It came back within the window: nothing left to
    # say (docs/alerts.md), not a recovery from a down that nobody was told of.
    clock = FakeClock(MONDAY_2AM + 600)
    config = write_config(job_check() + _patching())
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
        clock.advance(20 * 60)
    clock.advance(40 * 60)  # 03:10
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.SUCCESS, at=MONDAY_2AM + 50 * 60)
        await engine.finish_load(lambda: None)
        engine.close_windows(clock.now())
        await engine.writer.flush()
        assert engine.checks["job"].state.status is Status.UP
    assert _events(config) == []


async def test_a_hold_left_by_a_pause_does_not_silence_a_later_down_after_a_drop_window(
    write_config: ConfigWriter,
) -> None:
    # job fails at 02:10 inside `patching` (held) and is paused at 02:20: not down when patching
    # ends, its summary tells nothing, and a resume is no change that alerts. Down again at 05:10,
    # inside the `freeze` drop window (dropped: nothing told), it must be reminded after freeze
    # and its recovery told: patching's summary, long gone, is no summary it still waits for.
    clock = FakeClock(MONDAY_2AM + 600)
    freeze = '[[maintenance]]\nname = "freeze"\nstart = 2026-12-07T05:00:00Z\nduration = "1h"\nalerts = "drop"\n'
    config = write_config(job_check(extra='repeat = "1h"\n') + _patching() + freeze)
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        await ping(engine, "job", Kind.FAIL)  # 02:10: held by patching
        clock.advance(10 * 60)
        await engine.pause(engine.checks["job"])  # 02:20
        clock.advance(45 * 60)  # 03:05: patching is over
        engine.close_windows(clock.now())
        clock.advance(5 * 60)
        await engine.resume(engine.checks["job"])  # 03:10
        clock.advance(2 * 3600)  # 05:10, in freeze
        await ping(engine, "job", Kind.FAIL)
        clock.advance(55 * 60)  # 06:05: freeze is over
        engine.close_windows(clock.now())
        run_timer(engine, clock, 10 * 60)  # the reminder of the 05:10 down, due 06:10
        await ping(engine, "job", Kind.SUCCESS)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["reminder", "recovery"], "job went down and came back with nothing told"


async def test_a_recovery_goes_to_the_channels_a_summary_told_the_down_after_a_restart_with_other_channels(
    write_config: ConfigWriter,
) -> None:
    # docs/alerts.md: a held window's summary is the down alert of the checks it lists, and a
    # recovery goes to the channels told the down even if the check's `channels` changed since.
    # job fails at 02:10 (held), the summary at 03:01 tells "a"; restarted on a file where job
    # alerts "b", its recovery went to "b", which never heard of the down, and not to "a".
    clock = FakeClock(MONDAY_2AM + 600)
    logs = '[channels.a]\ntype = "log"\n[channels.b]\ntype = "log"\n'
    job = f'[checks.job]\nkey = "{new_key()}"\nevery = "7d"\nchannels = {{}}\n'
    config = write_config(logs + job.format('["a"]') + _patching())
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
        clock.advance(51 * 60)  # 03:01
        engine.close_windows(clock.now())
        await engine.writer.flush()
    clock.advance(60)
    async with running(write_config(logs + job.format('["b"]') + _patching()), clock) as engine:
        await engine.finish_load(lambda: None)
        await ping(engine, "job", Kind.SUCCESS)
    rows = query(config, "SELECT event, channel FROM outbox ORDER BY id")
    assert rows == [("maintenance", "a"), ("recovery", "a")]


async def _second_failure_2s_before(config: Config, at: float) -> CheckState:
    """failures_before_alert 2: job fails a minute before `at`, and again 2 s before it, then the
    timer runs 10 s (past the reorder window the second waits out). job's state then."""
    clock = FakeClock(at - 60)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        run_timer(engine, clock, 58)
        await ping(engine, "job", Kind.FAIL)
        run_timer(engine, clock, 10)
        return engine.checks["job"].state


@pytest.mark.parametrize("mode", ["drop", "hold"])
async def test_a_failure_that_arrives_before_a_window_and_waits_out_the_reorder_window_into_it_is_told(
    write_config: ConfigWriter, mode: str
) -> None:
    # failures_before_alert 2: the streak's second failure arrives 2 s before the window, and waits
    # out the reorder window (5 s) into it. Its down happened, and was learned, before the window:
    # told then, as it would have been at once, not dropped (nor held for a summary an hour on).
    config = write_config(job_check(extra="failures_before_alert = 2\n") + _patching(mode=mode))
    st = await _second_failure_2s_before(config, MONDAY_2AM)
    assert (st.status, st.window_hold) == (Status.DOWN, None)
    assert _events(config) == ["down"]


async def test_a_failure_held_for_the_reorder_window_into_a_second_window_stays_silenced_by_the_first(
    write_config: ConfigWriter,
) -> None:
    # Two `drop` windows cover job: "night" from 01:30 and, listed first, "patching" from 02:00.
    # The streak's second failure arrives at 01:59:58, inside "night", and waits out the reorder
    # window into "patching": "night" silenced it when it came, and still does; nothing is told.
    config = write_config(
        job_check(extra="failures_before_alert = 2\n") + _patching(mode="drop") + _patching("night", "drop", "01:30")
    )
    assert (await _second_failure_2s_before(config, MONDAY_2AM)).status is Status.DOWN
    assert _events(config) == []


async def test_a_failure_that_arrives_before_a_drop_window_ends_and_waits_out_the_reorder_window_past_it_is_dropped(
    write_config: ConfigWriter,
) -> None:
    # failures_before_alert 2, a `drop` window 02:00-03:00: the streak's second failure arrives at
    # 02:59:58 and waits out the reorder window past the window's end. Its down happened, and was
    # learned, within the window: dropped, as it would have been at once, not told at 03:00:03.
    config = write_config(job_check(extra="failures_before_alert = 2\n") + _patching(mode="drop"))
    assert (await _second_failure_2s_before(config, MONDAY_2AM + 3600)).status is Status.DOWN
    assert _events(config) == []


@pytest.mark.parametrize("mode", ["drop", "hold"])
async def test_a_recovery_that_arrives_before_a_window_and_waits_out_the_reorder_window_into_it_is_told(
    write_config: ConfigWriter, mode: str
) -> None:
    # min_runtime: a success without a start waits out the reorder window (its start may show it
    # too fast). job is down, told; its recovering success arrives 2 s before the window and is
    # applied in it. The recovery happened, and was learned, before the window: told then, not
    # dropped (nor held for a summary that tells only the checks still down: never told at all).
    config = write_config(job_check(extra='min_runtime = "1s"\n') + _patching(mode=mode))
    clock = FakeClock(MONDAY_2AM - 60)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        run_timer(engine, clock, 58)
        await ping(engine, "job", Kind.SUCCESS)  # 01:59:58
        run_timer(engine, clock, 10)
        assert engine.checks["job"].state.status is Status.UP
    assert _events(config) == ["down", "recovery"]
