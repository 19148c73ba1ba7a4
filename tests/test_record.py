"""A check's record over 24 h / 7 d / 30 d: the pure arithmetic, then the API and the check page
on both stores, from real pings."""

from __future__ import annotations

from typing import Any

import pytest

from heartfly.core.clock import FakeClock
from heartfly.core.record import Change, RunSpan, record, records
from heartfly.web.app import create_app
from heartfly.web.runtime import RUNTIME
from tests.conftest import ConfigWriter, new_key
from tests.webutil import bearer, login

DAY = 86400.0
NOW = 1_780_000_000.0


def test_an_hour_down_in_the_last_day_is_an_availability_of_23_in_24() -> None:
    changes = [Change(NOW - 5 * 3600, "up", "down"), Change(NOW - 4 * 3600, "down", "up")]
    r = record("24h", DAY, NOW, NOW - 30 * DAY, "up", changes, [])
    assert r.down == 3600 and r.watched == DAY and r.times_down == 1
    assert r.availability == pytest.approx(23 / 24)


def test_paused_time_and_time_before_the_check_existed_are_not_watched() -> None:
    created = NOW - 10 * 3600
    changes = [Change(NOW - 6 * 3600, "up", "paused"), Change(NOW - 4 * 3600, "paused", "up")]
    r = record("24h", DAY, NOW, created, None, changes, [])
    assert r.watched == 8 * 3600 and r.down == 0 and r.availability == 1.0


def test_a_check_down_since_before_the_window_is_down_from_its_start_and_not_counted_as_going_down() -> None:
    r = record("24h", DAY, NOW, NOW - 30 * DAY, "down", [Change(NOW - 30 * DAY + 5, "up", "down")], [])
    assert r.down == DAY and r.availability == 0.0 and r.times_down == 0


def test_a_reminder_is_no_new_time_down_and_a_paused_check_has_no_availability() -> None:
    changes = [Change(NOW - 100, "up", "down"), Change(NOW - 50, "down", "down"), Change(NOW - 10, "down", "paused")]
    r = record("24h", DAY, NOW, NOW - 200, None, changes, [])
    assert r.times_down == 1 and r.down == 90 and r.watched == 190
    paused_all_along = record("24h", DAY, NOW, NOW - 2 * DAY, "paused", [], [])
    assert paused_all_along.watched == 0 and paused_all_along.availability is None


def test_run_durations_are_a_median_and_a_p95_that_happened_and_failures_are_counted() -> None:
    runs = [RunSpan(NOW - 1000 - d, NOW - 1000, "success") for d in range(1, 21)]  # 1..20 s
    runs.append(RunSpan(NOW - 500, NOW - 400, "failed"))
    runs.append(RunSpan(NOW - 40 * DAY, NOW - 39 * DAY, "failed"))  # ended before every window
    r = record("24h", DAY, NOW, NOW - 60 * DAY, None, [], runs)
    assert r.runs == 21 and r.failed_runs == 1
    assert r.median_duration == 11 and r.p95_duration == 20  # nearest rank of 1..20 and 100
    empty = record("24h", DAY, NOW, NOW - 60 * DAY, None, [], [])
    assert empty.median_duration is None and empty.p95_duration is None


def test_the_three_windows_see_what_falls_in_each() -> None:
    changes = [Change(NOW - 3 * DAY, "up", "down"), Change(NOW - 3 * DAY + 600, "down", "up")]
    day, week, month = records(NOW, NOW - 60 * DAY, None, changes, [])
    assert (day.window, week.window, month.window) == ("24h", "7d", "30d")
    assert day.down == 0 and week.down == 600 and month.down == 600 and week.times_down == 1


@pytest.mark.both_stores
async def test_the_api_and_the_check_page_show_the_record_of_real_pings(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n')
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    for path, advance in ((f"/ping/{key}/start", 30), (f"/ping/{key}", 60), (f"/ping/{key}/start", 10),
                          (f"/ping/{key}/fail", 600), (f"/ping/{key}", 0)):  # fmt: skip
        assert (await client.get(path)).status == 200
        clock.advance(advance)
    resp = await client.get("/api/v1/checks/job/record", headers=bearer(config))
    assert resp.status == 200
    body = await resp.json()
    assert body["check"] == "job" and [w["window"] for w in body["windows"]] == ["24h", "7d", "30d"]
    day = body["windows"][0]
    assert day["watched_seconds"] == 700 and day["down_seconds"] == 600 and day["times_down"] == 1
    assert day["availability"] == pytest.approx(100 / 700, abs=1e-6)
    assert (day["runs"], day["failed_runs"]) == (2, 1)
    assert (day["median_duration_seconds"], day["p95_duration_seconds"]) == (10, 30)
    assert (await client.get("/api/v1/checks/nope/record", headers=bearer(config))).status == 404
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    assert 'id="record"' in page and "14.29 %" in page and "10 min · 1×" in page and "1 failed" in page


async def test_a_second_down_in_half_a_day_never_reads_as_100_percent_on_the_check_page(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "30d"\n')
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    assert (await client.get(f"/ping/{key}/fail")).status == 200
    clock.advance(1)
    assert (await client.get(f"/ping/{key}")).status == 200
    clock.advance(50_000)  # down 1 s of 50001: 99.998 %, which two decimals round up to 100.00
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    assert "1 s · 1×" in page and "100.00 %" not in page and "99.99 %" in page


async def test_a_job_that_sends_no_start_has_no_run_count_of_0_on_its_record_but_a_word_on_why(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Most cron jobs ping only their end: the record counts runs a start opened, so it read "0"
    # in every window beside a Runs card listing the job's successes and failures.
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\n')
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    for path in (f"/ping/{key}", f"/ping/{key}/fail", f"/ping/{key}"):
        assert (await client.get(path)).status == 200
        clock.advance(60)
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    row = page.split('<th scope="row">Runs</th>', 1)[1].split("</tr>", 1)[0]
    assert row == "<td>–</td>" * 3
    assert "this job's newest end came without one, and an end without a start counts as no run here" in page
    body = await (await client.get("/api/v1/checks/job/record", headers=bearer(config))).json()
    assert body["windows"][0]["runs"] == 0  # the API's figure is the count, as documented


async def test_a_job_that_no_longer_sends_its_start_has_no_run_count_of_0_on_its_record_either(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # Its old timed runs, kept for keep_history (400 days), made it read as a job that sends its
    # start: "0" in every window, and no word, beside the successes it sends now.
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1d"\n')
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    for path in (f"/ping/{key}/start", f"/ping/{key}"):
        assert (await client.get(path)).status == 200
        clock.advance(60)
    clock.advance(31 * DAY)
    for _ in range(2):
        assert (await client.get(f"/ping/{key}")).status == 200
        clock.advance(3600)
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    row = page.split('<th scope="row">Runs</th>', 1)[1].split("</tr>", 1)[0]
    assert row == "<td>–</td>" * 3
    assert "this job's newest end came without one" in page
    assert "Durations appear once the job also pings <code>/start</code>" in page

    assert (await client.get(f"/ping/{key}/start")).status == 200  # it sends its start again
    clock.advance(60)
    assert (await client.get(f"/ping/{key}")).status == 200
    page = await (await client.get("/checks/job")).text()
    row = page.split('<th scope="row">Runs</th>', 1)[1].split("</tr>", 1)[0]
    assert row == "<td>1</td>" * 3 and "newest end came without one" not in page


async def test_a_check_never_pinged_yet_is_not_said_to_send_no_start(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    config = write_config(f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\n')
    client = await aiohttp_client(create_app(config, clock=FakeClock()))
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    row = page.split('<th scope="row">Runs</th>', 1)[1].split("</tr>", 1)[0]
    assert row == "<td>0</td>" * 3 and "came without one" not in page


async def test_a_fan_in_whose_workers_send_no_start_has_its_batches_counted_as_runs_and_said_so(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The record counts a fan-in's batches, opened by the first worker's success: the page said
    # runs were those a /start ping opened, beside a count of batches none of which had one.
    key = new_key()
    config = write_config(f'[checks.shards]\nkey = "{key}"\nevery = "1d"\nexpect = 2\n')
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    for _ in range(2):
        assert (await client.get(f"/ping/{key}")).status == 200
        clock.advance(60)
    await login(client, config)
    page = await (await client.get("/checks/shards")).text()
    row = page.split('<th scope="row">Runs</th>', 1)[1].split("</tr>", 1)[0]
    assert row == "<td>1</td>" * 3
    assert "Runs are the fan-in's batches, started or not." in page and "a <code>/start</code> ping opened" not in page


async def test_the_late_end_of_a_run_that_overran_is_that_runs_end_not_a_run_without_a_start(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # `heartfly run` sends a start and its end with one run id. A run past max_runtime is given
    # up at its limit, and its end, when it comes, closes nothing: the page listed that end as a
    # run of its own beside the overrun (a third run where the record and the runs API count two)
    # and, the newest end untimed, said the job sent no /start and to make it send one.
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\nmax_runtime = "20s"\n')
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    engine = client.app[RUNTIME].engine
    for path, seconds in (
        (f"/ping/{key}/start?rid=r1", 5),
        (f"/ping/{key}?rid=r1", 60),
        (f"/ping/{key}/start?rid=r2", 30),
    ):
        assert (await client.get(path)).status == 200
        clock.advance(seconds)
        engine.timer_alive.mark(clock.now())  # as the timer marks itself, every second
    engine.fire_due(clock.now())
    assert engine.checks["job"].state.status.value == "down"
    assert (await client.get(f"/ping/{key}?rid=r2")).status == 200  # it did end, 10 s past its limit
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    assert "came without one" not in page and "Durations appear once" not in page
    runs_card = page.split('<h2 id="runs-h">Runs</h2>', 1)[1].split("</section>", 1)[0]
    assert runs_card.count("overran max_runtime · 20 s") == 1 and runs_card.count("succeeded ·") == 1
    assert "last 2: 1 succeeded, 1 overran max_runtime" in runs_card


async def test_the_late_end_of_a_run_that_overran_without_a_run_id_is_that_runs_end_too(
    aiohttp_client: Any, write_config: ConfigWriter
) -> None:
    # The curl recipe sends /start and the end without a run id. A run given up at max_runtime
    # and its end, when it came, were drawn as two runs, the newest without a start: the page
    # said the job sends no /start, and to make it send one.
    key = new_key()
    config = write_config(f'[checks.job]\nkey = "{key}"\nevery = "1h"\nmax_runtime = "20s"\n')
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock=clock))
    engine = client.app[RUNTIME].engine
    for path, seconds in ((f"/ping/{key}/start", 5), (f"/ping/{key}", 60), (f"/ping/{key}/start", 30)):
        assert (await client.get(path)).status == 200
        clock.advance(seconds)
        engine.timer_alive.mark(clock.now())  # as the timer marks itself, every second
    engine.fire_due(clock.now())
    assert engine.checks["job"].state.status.value == "down"
    assert (await client.get(f"/ping/{key}")).status == 200  # it did end, 10 s past its limit
    clock.advance(5)
    assert (await client.get(f"/ping/{key}/fail")).status == 200  # an end no start opened: drawn as one
    await login(client, config)
    page = await (await client.get("/checks/job")).text()
    runs_card = page.split('<h2 id="runs-h">Runs</h2>', 1)[1].split("</section>", 1)[0]
    assert "last 3: 1 succeeded, 1 overran max_runtime, 1 failed" in runs_card, runs_card
