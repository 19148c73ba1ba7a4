"""The run charts of the dashboard (the index's strip, the check page's chart) against a long
history: what they draw is what happened, through a real app, a real SQLite file and a fake clock."""

from __future__ import annotations

import re
from typing import Any

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.states import Reason, Status
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.test_clock_steps import wake
from tests.webutil import bearer

pytestmark = pytest.mark.both_stores  # the charts' reads have a form of their own on PostgreSQL

HOUR = 3600.0
MISS = "<title>missed (no ping by the deadline)"


async def a_healthy_run(client: Any, key: str, clock: FakeClock) -> None:
    """A start, its success a minute later, then the rest of the hour."""
    assert (await client.get(f"/ping/{key}/start")).status == 200
    clock.advance(60)
    assert (await client.get(f"/ping/{key}")).status == 200
    clock.advance(HOUR - 60)


async def charts_of(client: Any, app: Any, name: str) -> tuple[str, str]:
    """The index's strip and the check page's chart of `name`, as SVG text."""
    await app[RUNTIME].engine.writer.flush()  # the engine's: on PostgreSQL, the leader's term's
    headers = bearer(app[RUNTIME].config)
    index = await (await client.get("/", headers=headers)).text()
    page = await (await client.get(f"/checks/{name}", headers=headers)).text()
    strip = re.search(r'<svg class="timeline".*?</svg>', index, re.S)
    chart = re.search(r'<svg class="chart".*?</svg>', page, re.S)
    assert strip is not None and chart is not None
    return strip.group(0), chart.group(0)


async def test_a_missed_deadline_stays_in_the_charts_behind_the_healthy_runs_after_it(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Each healthy run with a start adds two routine flips (running, up): a count of the newest
    # flips lost the miss after a handful of runs while older runs were still drawn.
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\ngrace = "5m"\n')
    clock = FakeClock(1_780_000_000.0)
    app = create_app(config, clock=clock)
    client = await aiohttp_client(app)
    for _ in range(2):
        await a_healthy_run(client, key, clock)
    clock.advance(2 * HOUR)  # the job does not run
    wake(app[RUNTIME].engine, clock)
    assert (app[RUNTIME].engine.checks["job"].state.reason) is Reason.MISSED
    for _ in range(16):
        await a_healthy_run(client, key, clock)
    strip, chart = await charts_of(client, app, "job")
    assert chart.count(MISS) == 1 and strip.count(MISS) == 1  # 19 events: fewer than either's slots
    assert "last 19: 18 succeeded, 1 missed (no ping by the deadline)" in chart


async def test_a_fan_ins_runs_are_its_batches_not_one_run_per_member(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(f'[checks.shards]\nkey = "{key}"\nevery = "1h"\ngrace = "5m"\nexpect = 3\n')
    clock = FakeClock(1_780_000_000.0)
    app = create_app(config, clock=clock)
    client = await aiohttp_client(app)
    for batch in ("b0", "b1"):
        for worker in ("w1", "w2", "w3"):
            assert (await client.get(f"/ping/{key}?rid={batch}&member={worker}")).status == 200
            clock.advance(20)
        clock.advance(HOUR - 60)
    assert (await client.get(f"/ping/{key}?rid=b2&member=w1")).status == 200  # w2 and w3 never report
    clock.advance(2 * HOUR)
    wake(app[RUNTIME].engine, clock)
    state = app[RUNTIME].engine.checks["shards"].state
    assert (state.status, state.reason) == (Status.DOWN, Reason.INCOMPLETE)
    strip, chart = await charts_of(client, app, "shards")
    assert 'aria-label="Run durations, last 3: 2 succeeded, 1 incomplete"' in chart
    assert strip.count("<rect") == 3


async def test_a_run_whose_end_is_stamped_before_its_start_is_drawn_once(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A spooled end from a client whose clock lags the server's: the run is stored with no
    # duration (its end at its start), and its end ping was drawn again beside it, as a second run.
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n')
    clock = FakeClock(1_780_000_000.0)
    app = create_app(config, clock=clock)
    client = await aiohttp_client(app)
    await a_healthy_run(client, key, clock)
    assert (await client.get(f"/ping/{key}/start?rid=r1")).status == 200
    clock.advance(60)
    assert (await client.get(f"/ping/{key}?rid=r1&ts={clock.now() - 90:.0f}")).status == 200
    clock.advance(10)  # past the reorder window
    strip, chart = await charts_of(client, app, "job")
    assert "last 2: 2 succeeded" in chart and "last 2: 2 succeeded" in strip


async def test_a_fan_ins_batch_completed_by_a_back_dated_worker_hides_no_failure(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # A batch whose completing success is dated before its first ping is stored with its end at
    # its start; a fan-in's successes are not drawn on their own, so no end ping is dated there,
    # and the chart took the run's end to be an older failure (of no run id, as the batch) and hid it.
    key = new_key()
    config = write_config(f'[checks.shards]\nkey = "{key}"\nevery = "1h"\ngrace = "5m"\nexpect = 2\n')
    clock = FakeClock(1_780_000_000.0)
    app = create_app(config, clock=clock)
    client = await aiohttp_client(app)
    assert (await client.get(f"/ping/{key}/fail?member=w1")).status == 200  # a worker fails at once
    clock.advance(HOUR)
    assert (await client.get(f"/ping/{key}?member=w1")).status == 200
    clock.advance(60)
    assert (await client.get(f"/ping/{key}?member=w2&ts={clock.now() - 90:.0f}")).status == 200
    clock.advance(10)  # past the reorder window
    strip, chart = await charts_of(client, app, "shards")
    assert "last 2: 1 failed, 1 succeeded" in chart and "last 2: 1 failed, 1 succeeded" in strip
