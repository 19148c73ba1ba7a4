"""What a maintenance window leaves told: a recovery of a down told before the window began."""

from __future__ import annotations

from heartfly.core.clock import FakeClock
from heartfly.core.states import Kind, Status
from tests.conftest import ConfigWriter
from tests.test_maintenance import MONDAY_2AM
from tests.test_maintenance_holds import _events, _patching, job_check
from tests.test_restart import ping, running


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


async def test_a_dropping_window_drops_the_recovery_of_a_check_told_down_before_it(
    write_config: ConfigWriter,
) -> None:
    config = write_config(job_check() + _patching(mode="drop"))
    clock = FakeClock(MONDAY_2AM - 600)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        clock.advance(20 * 60)
        await ping(engine, "job", Kind.SUCCESS)
        clock.advance(60 * 60)
        engine.close_windows(clock.now())
        await engine.writer.flush()
    assert _events(config) == ["down"]
