"""Maintenance windows: the pure rules (when a window is under way, what it covers, what its
summary says), the config's checks, and a real server holding alerts for a window and sending one
summary to a real webhook receiver when it ends."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from heartfly.core.clock import FakeClock
from heartfly.core.config import load_config
from heartfly.core.maintenance import Window, silencing, still_down
from heartfly.core.states import CheckState, Kind, Reason, Status
from heartfly.web import control
from tests.conftest import ConfigWriter, check, new_key, problems
from tests.storeutil import query
from tests.test_alerts import (
    Receivers,
    Start,
    receivers,  # noqa: F401 - a fixture
    start,  # noqa: F401 - a fixture
    until,
    webhook,
)
from tests.test_restart import ping, running

MONDAY_2AM = datetime(2026, 12, 7, 2, 0, tzinfo=UTC).timestamp()


def test_a_recurring_window_is_under_way_from_each_cron_time_for_its_duration() -> None:
    w = Window("patching", 7200, cron="0 2 * * 1")  # Mondays 02:00, two hours
    assert w.active(MONDAY_2AM - 1) is None
    assert w.active(MONDAY_2AM) == (MONDAY_2AM, MONDAY_2AM + 7200)
    assert w.active(MONDAY_2AM + 7199) == (MONDAY_2AM, MONDAY_2AM + 7200)
    assert w.active(MONDAY_2AM + 7200) is None
    assert w.ended_between(MONDAY_2AM, MONDAY_2AM + 7200) == [(MONDAY_2AM, MONDAY_2AM + 7200)]
    assert w.ended_between(MONDAY_2AM + 7200, MONDAY_2AM + 7 * 86400) == []
    three_weeks = w.ended_between(MONDAY_2AM - 1, MONDAY_2AM + 21 * 86400 + 7200)
    assert [begun for begun, _ in three_weeks] == [MONDAY_2AM + k * 7 * 86400 for k in range(4)]


def test_a_recurring_window_follows_its_time_zone() -> None:
    berlin = Window("patching", 3600, cron="0 2 * * 1", timezone="Europe/Berlin")
    assert berlin.active(MONDAY_2AM - 3600) == (MONDAY_2AM - 3600, MONDAY_2AM)  # 02:00 CET is 01:00 UTC


def test_a_one_off_window_is_under_way_once() -> None:
    w = Window("migration", 600, start=MONDAY_2AM)
    assert w.active(MONDAY_2AM + 300) == (MONDAY_2AM, MONDAY_2AM + 600)
    assert w.active(MONDAY_2AM + 600) is None and w.active(MONDAY_2AM + 86400 * 7) is None
    assert w.ended_between(0, MONDAY_2AM + 10**6) == [(MONDAY_2AM, MONDAY_2AM + 600)]


def test_a_recurring_window_at_a_time_the_clocks_skip_starts_when_cron_runs_it() -> None:
    # Europe/Berlin, 2026-03-29: 02:00 CET is 03:00 CEST. Cron runs a "30 2" job at the jump, as
    # schedule.py expects a check's ping; the window opened 30 minutes later, at 03:30.
    w = Window("patching", 3600, cron="30 2 * * *", timezone="Europe/Berlin")
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()
    assert w.active(jump + 600) == (jump, jump + 3600)
    assert w.active(jump - 1) is None
    day_after = datetime(2026, 3, 30, 0, 30, tzinfo=UTC).timestamp()  # 02:30 CEST as usual
    assert w.active(day_after + 1) == (day_after, day_after + 3600)


def test_a_window_covers_checks_by_name_pattern_or_tag_and_every_check_by_default() -> None:
    etl, backup = check("etl-extract", tags=("db",)), check("backup")
    assert Window("all", 60).covers(etl) and Window("all", 60).covers(backup)
    assert Window("etl", 60, checks=("etl-*",)).covers(etl) and not Window("etl", 60, checks=("etl-*",)).covers(backup)
    assert Window("db", 60, tags=("db",)).covers(etl) and not Window("db", 60, tags=("db",)).covers(backup)
    windows = [Window("later", 60, start=MONDAY_2AM + 3600), Window("now", 60, start=MONDAY_2AM, checks=("backup",))]
    assert silencing(windows, backup, MONDAY_2AM + 1) is windows[1]
    assert silencing(windows, etl, MONDAY_2AM + 1) is None


def _state(
    status: Status, since: float, reason: Reason | None = None, held: tuple[str, float] | None = None
) -> CheckState:
    st = CheckState(status=status, changed_at=since)
    st.reason = reason
    if held is not None:
        st.window_hold, st.window_end = held
    return st


def test_the_summary_tells_the_down_alerts_the_window_held_of_checks_down_still() -> None:
    w = Window("patching", 600, start=MONDAY_2AM)
    end = MONDAY_2AM + 600
    checks = [
        (check("went-down", channels=("ops",)), _state(Status.DOWN, MONDAY_2AM + 60, Reason.FAILED, ("patching", end))),
        (check("down-before"), _state(Status.DOWN, MONDAY_2AM - 60, Reason.MISSED)),  # alerted back then
        (check("recovered"), _state(Status.UP, MONDAY_2AM + 300, None, ("patching", end))),
        (check("down-after"), _state(Status.DOWN, MONDAY_2AM + 900, Reason.MISSED)),  # alerted as usual
        (check("other-window"), _state(Status.DOWN, MONDAY_2AM + 60, Reason.FAILED, ("backups", end))),
        (check("next-time"), _state(Status.DOWN, MONDAY_2AM + 60, Reason.FAILED, ("patching", end + 86400))),
    ]
    [down] = still_down(w, end, checks)
    assert (down.check, down.reason, down.since, down.channels) == ("went-down", "failed", MONDAY_2AM + 60, ("ops",))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('name = "w"\nduration = "1h"', 'needs exactly one of "cron" (recurring) and "start"'),
        ('name = "w"\ncron = "0 2 * * 1"\nstart = 2026-12-07T02:00:00Z\nduration = "1h"', "exactly one of"),
        ('name = "w"\ncron = "0 2 * * 1"', "maintenance[0].duration: missing"),
        ('name = "w"\nstart = "tomorrow"\nduration = "1h"', "maintenance[0].start: expected a date and time"),
        ('name = "w"\nstart = 1\nduration = "1h"', "maintenance[0].start: expected a date and time"),
        ('name = "w"\ncron = "0 2 * * 1"\nduration = "1h"\nalerts = "mute"', 'expected "hold"'),
        ('name = "w"\ncron = "0 2 * * 1"\nduration = "1h"\nchecks = ["nope-*"]', '"nope-*" matches no check'),
        ('name = "w"\nstart = 2026-12-07T02:00:00Z\nduration = "1h"\ntimezone = "UTC"', "gives its own offset"),
        ('name = "w"\nstart = "2026-12-07 02:00+01:00"\nduration = "1h"\ntimezone = "UTC"', "gives its own offset"),
        ('name = "w"\ncron = "0 2 * * 1"\nduration = "1h"\nwhen = 1', "maintenance[0].when: unknown key"),
        ('name = "w"\nstart = "0001-01-01 00:00"\ntimezone = "Asia/Tokyo"\nduration = "1h"', "start: out of range"),
        ('name = "w"\nstart = 0001-01-01\ntimezone = "Asia/Tokyo"\nduration = "1h"', "start: out of range"),
        ('name = "w"\nstart = 9999-12-31T23:59:00-05:00\nduration = "1h"', "start: out of range"),
        ('name = "w"\nstart = "9999-12-31T23:59-05:00"\nduration = "1h"', "start: out of range"),
    ],
)
def test_a_bad_window_is_named_in_the_config_errors(write_config: ConfigWriter, body: str, problem: str) -> None:
    found = problems(write_config, f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\n\n[[maintenance]]\n{body}\n')
    assert any(problem in p for p in found), found


def test_a_good_window_is_read_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "heartfly.toml"
    path.write_text(
        f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\ntags = ["db"]\n'
        '[[maintenance]]\nname = "patching"\ncron = "0 2 * * 1"\ntimezone = "Europe/Berlin"\nduration = "2h"\n'
        'tags = ["db"]\n[[maintenance]]\nname = "move"\nstart = 2026-12-24T08:00:00+01:00\nduration = "30m"\n'
        'alerts = "drop"\n'
    )
    config = load_config(path)
    patching, move = config.maintenance
    assert (patching.cron, patching.timezone, patching.duration, patching.alerts) == ("0 2 * * 1", "Europe/Berlin",
                                                                                     7200, "hold")  # fmt: skip
    assert config.checks["job"].tags == ("db",) and patching.covers(config.checks["job"])
    assert move.start == datetime(2026, 12, 24, 7, 0, tzinfo=UTC).timestamp() and move.alerts == "drop"


def test_a_window_without_a_name_is_named_by_its_schedule_and_a_local_start_is_in_its_timezone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "heartfly.toml"
    weekly = '[[maintenance]]\ncron = "0 2 * * 0"\nduration = "2h"\ntimezone = "Europe/Berlin"\ntags = ["backup"]\n'
    path.write_text(  # product.md's own example: no name, a one-off start without an offset
        f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\ntags = ["backup"]\n'
        + weekly
        + '[[maintenance]]\nstart = "2026-12-24 18:00"\nduration = "2h"\ntimezone = "Europe/Berlin"\n'
        '[[maintenance]]\nstart = 2026-07-01T12:30:00\nduration = "1h"\n'  # a TOML local date-time: UTC
        '[[maintenance]]\nstart = 2026-08-01\nduration = "1d"\n'  # a TOML date: from its midnight
    )
    first, christmas, summer, august = load_config(path).maintenance
    assert christmas.start == datetime(2026, 12, 24, 17, 0, tzinfo=UTC).timestamp()  # 18:00 in Berlin, winter
    assert summer.start == datetime(2026, 7, 1, 12, 30, tzinfo=UTC).timestamp()
    assert august.start == datetime(2026, 8, 1, tzinfo=UTC).timestamp()
    names = [w.name for w in (first, christmas, summer, august)]
    assert all(re.fullmatch(r"maintenance-[0-9a-f]{8}", n) for n in names) and len(set(names)) == 4
    # The same window keeps its name (and the marks kept under it) when another comes before it.
    path.write_text(
        f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\ntags = ["backup"]\n'
        '[[maintenance]]\ncron = "0 5 * * 1"\nduration = "1h"\n' + weekly
    )
    assert load_config(path).maintenance[1].name == first.name
    # ...and when it is spelled otherwise: "120m" for "2h", a TOML date-time for the same string.
    path.write_text(
        f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\ntags = ["backup"]\n'
        + weekly.replace('"2h"', '"120m"')
        + '[[maintenance]]\nstart = 2026-12-24T18:00:00+01:00\nduration = "2h"\n'
    )
    assert [w.name for w in load_config(path).maintenance] == [first.name, christmas.name]
    names = []
    for duration in ("1.1h", "66m"):  # 3960.0000000000005 s and 3960.0 s as read
        path.write_text(f'[[maintenance]]\ncron = "0 3 * * 0"\nduration = "{duration}"\n')
        names += [w.name for w in load_config(path).maintenance]
    assert names[0] == names[1]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('start = "2026-03-29 02:30"\ntimezone = "Europe/Berlin"\nduration = "1h"', "does not exist in Europe/Berlin"),
        (
            'cron = "0 2 * * 1"\nduration = "1h"\n[[maintenance]]\ncron = "0 2 * * 1"\nduration = "1h"',
            "maintenance[1].name: missing, and another window has the same schedule",
        ),
    ],
)
def test_an_unnamed_window_that_cannot_be_read_says_why(write_config: ConfigWriter, body: str, problem: str) -> None:
    found = problems(write_config, f'[checks.job]\nkey = "{new_key()}"\nevery = "1h"\n\n[[maintenance]]\n{body}\n')
    assert any(problem in p for p in found), found


def _window(mode: str, checks: str = '["job"]') -> str:
    begun = datetime.fromtimestamp(time.time() - 1, UTC).isoformat(timespec="seconds")
    return (
        f'[[maintenance]]\nname = "patching"\nstart = "{begun}"\nduration = "3s"\nchecks = {checks}\n'
        f'alerts = "{mode}"\n'
    )


async def test_a_held_window_sends_no_alert_during_it_and_one_summary_when_it_ends(
    start: Start,  # noqa: F811 - the fixture
    receivers: Receivers,  # noqa: F811 - the fixture
    write_config: ConfigWriter,
) -> None:
    hook = await receivers()
    job, other, back = new_key(), new_key(), new_key()
    body = (
        webhook("hook", hook.url)
        + f'[checks.job]\nkey = "{job}"\nevery = "1h"\nchannels = ["hook"]\n'
        + f'[checks.back]\nkey = "{back}"\nevery = "1h"\nchannels = ["hook"]\n'
        + f'[checks.other]\nkey = "{other}"\nevery = "1h"\nchannels = ["hook"]\n'
        + _window("hold", '["job", "back"]')
    )
    hf = await start(write_config(body))
    page_client: Any = hf.client
    await hf.ping(job, "/fail", "disk full")
    await hf.ping(back, "/fail")
    await hf.ping(back)  # down and back within the window: nothing left to say
    await hf.ping(other, "/fail")  # not covered: alerted at once
    await until(lambda: [h for h in hook.hits if h.json()["check"]["name"] == "other"], "the uncovered check's alert")
    token = hf.auth
    resp = await page_client.get("/", headers=token)
    assert "Maintenance patching" in await resp.text()
    summary = await until(lambda: [h for h in hook.hits if h.json()["event"] == "maintenance"], "the summary", 8)
    assert len(summary) == 1
    sent = summary[0].json()
    assert sent["maintenance"]["window"] == "patching"
    assert [d["check"] for d in sent["maintenance"]["still_down"]] == ["job"]
    assert sent["maintenance"]["still_down"][0]["reason"] == "failed"
    assert "Maintenance patching ended: 1 check(s) still down (job)" in sent["summary"]
    covered = [
        h for h in hook.hits if h.json()["event"] != "maintenance" and h.json()["check"]["name"] in ("job", "back")
    ]
    assert covered == []
    # Its down alert was held, not queued: the summary stands for it, among its alerts.
    assert [alert["event"] for alert in await hf.alerts("job")] == ["maintenance"]


@pytest.mark.both_stores  # the outbox's read is SQL of its own on each
async def test_a_recovery_waits_behind_the_summary_that_tells_its_check_down(
    start: Start,  # noqa: F811 - the fixture
    receivers: Receivers,  # noqa: F811 - the fixture
    write_config: ConfigWriter,
) -> None:
    # The summary is the held checks' down alert: a recovery sent while it is retried would leave
    # "still down" as the channel's last word about a check that is up.
    hook = await receivers(503)  # refuses the summary's first try
    job = new_key()
    body = (
        webhook("hook", hook.url)
        + f'[checks.job]\nkey = "{job}"\nevery = "1h"\nchannels = ["hook"]\n'
        + _window("hold")
        + '[alerts]\nretry_initial = "2s"\nretry_max = "2s"\ntimeout = "1s"\nexpire_after = "60s"\n'
    )
    hf = await start(write_config(body))
    await hf.ping(job, "/fail", "disk full")
    await until(lambda: hook.hits, "the summary's first try", 10)
    await hf.ping(job)  # up again while the summary waits for its retry
    await until(lambda: len(hook.hits) >= 3, "the summary's retry and the recovery", 10)
    assert [h.json()["event"] for h in hook.hits] == ["maintenance", "maintenance", "recovery"]
    assert [alert["event"] for alert in await hf.alerts("job")] == ["maintenance", "recovery"]  # its history too


@pytest.mark.parametrize(
    "change", ["removed", "shortened", "covers-no-more", "still-holding"], ids=lambda change: change
)
async def test_a_reload_that_ends_a_window_early_tells_what_it_held_at_once(
    start: Start,  # noqa: F811 - the fixture
    receivers: Receivers,  # noqa: F811 - the fixture
    write_config: ConfigWriter,
    change: str,
) -> None:
    # Without it, a check down in the window was told nothing, ever: its alert was held for a
    # summary that no window would send.
    hook = await receivers()
    job = new_key()
    begun = datetime.fromtimestamp(time.time() - 1, UTC).isoformat(timespec="seconds")
    body = (
        webhook("hook", hook.url)
        + f'[checks.job]\nkey = "{job}"\nevery = "1h"\nchannels = ["hook"]\n'
        + f'[checks.other]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["hook"]\n'
    )
    window = f'[[maintenance]]\nname = "patching"\nstart = "{begun}"\nduration = "1h"\nchecks = ["job"]\n'
    config = write_config(body + window)
    hf = await start(config)
    await hf.ping(job, "/fail", "disk full")
    edited = {
        "removed": "",
        "shortened": window.replace('duration = "1h"', 'duration = "1s"'),  # its occurrence is over
        "covers-no-more": window.replace('checks = ["job"]', 'checks = ["other"]'),
        "still-holding": window.replace('duration = "1h"', 'duration = "2h"'),
    }[change]
    config.path.write_text(config.path.read_text().replace(window, edited))
    assert await control.reload_config(hf.client.app) == (2, [])
    if change == "still-holding":  # made longer: it holds the alert still, for its own end
        await asyncio.sleep(1)
        assert hook.hits == []
        return
    [hit] = await until(lambda: hook.hits, "the held alert", 5)
    sent = hit.json()
    assert sent["event"] == "maintenance" and sent["maintenance"]["window"] == "patching"
    assert [d["check"] for d in sent["maintenance"]["still_down"]] == ["job"]
    await asyncio.sleep(1)  # and once only
    assert len(hook.hits) == 1


@pytest.mark.both_stores  # the outbox's read is SQL of its own on each
async def test_a_summary_being_retried_holds_back_only_the_alerts_of_the_checks_it_lists(
    start: Start,  # noqa: F811 - the fixture
    aiohttp_server: AiohttpServer,
    write_config: ConfigWriter,
) -> None:
    # Retried up to expire_after (24 h by default): every check on the channel waited behind it.
    events: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        event = (await request.json())["event"]
        events.append(event)
        return web.Response(status=503 if event == "maintenance" else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = await aiohttp_server(app)
    job, upper, wild = new_key(), new_key(), new_key()
    body = (
        webhook("hook", str(server.make_url("/hook")))
        + f'[checks.job]\nkey = "{job}"\nevery = "1h"\nchannels = ["hook"]\n'
        + f'[checks.JOB]\nkey = "{upper}"\nevery = "1h"\nchannels = ["hook"]\n'
        + f'[checks.jo_]\nkey = "{wild}"\nevery = "1h"\nchannels = ["hook"]\n'
        + _window("hold")
        + '[alerts]\nretry_initial = "1s"\nretry_max = "1s"\ntimeout = "1s"\nexpire_after = "60s"\n'
    )
    hf = await start(write_config(body))
    await hf.ping(job, "/fail", "disk full")
    await until(lambda: "maintenance" in events, "the summary's first try", 10)
    for other in (upper, wild):  # not covered: names SQL's LIKE would have taken for "job"
        await hf.ping(other, "/fail")
    await until(lambda: events.count("down") == 2, "the uncovered checks' down alerts", 6)
    await hf.ping(job)  # the listed check's recovery still waits for the summary
    await asyncio.sleep(1.5)
    assert "recovery" not in events


async def test_a_dropping_window_sends_nothing_at_all(
    start: Start,  # noqa: F811 - the fixture
    receivers: Receivers,  # noqa: F811 - the fixture
    write_config: ConfigWriter,
) -> None:
    hook = await receivers()
    job = new_key()
    body = webhook("hook", hook.url) + f'[checks.job]\nkey = "{job}"\nevery = "1h"\nchannels = ["hook"]\n'
    hf = await start(write_config(body + _window("drop")))
    await hf.ping(job, "/fail")
    await asyncio.sleep(3.5)  # past the window's end
    assert hook.hits == []
    assert (await hf.alerts("job")) == []


def test_check_config_lists_each_window_with_what_it_covers_and_when_it_comes(tmp_path: Path) -> None:
    from tests.proc import heartfly

    path = tmp_path / "heartfly.toml"
    path.write_text(
        f'[checks.backup]\nkey = "{new_key()}"\nevery = "1h"\ntags = ["db"]\n'
        f'[checks.web]\nkey = "{new_key()}"\nevery = "1h"\n'
        '[[maintenance]]\nname = "patching"\ncron = "0 2 * * 1"\ntimezone = "Europe/Berlin"\nduration = "2h"\n'
        'tags = ["db"]\n[[maintenance]]\nname = "move"\nstart = 2020-01-01T00:00:00Z\nduration = "1h"\n'
        'alerts = "drop"\n'
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert 'maintenance patching: cron "0 2 * * 1" (Europe/Berlin), 2 h; alerts held for one summary at its end' in out
    # Mondays 02:00-04:00 in Berlin the window is under way as the test runs: said so, not "next".
    assert "  covers: backup\n" in out and ("next from " in out or "under way until " in out)
    assert "maintenance move: once, at 2020-01-01 00:00:00Z, 1 h; alerts dropped" in out
    assert "  covers: every check\n  no occurrence left" in out


def test_check_config_warns_of_a_window_whose_tags_no_check_carries_as_it_refuses_a_name_that_matches_none(
    tmp_path: Path,
) -> None:
    # checks = ["bakup"] is an error, but tags = ["bd"] (for "db") passed in silence: the window
    # covered nothing, and the patching night paged everyone.
    from tests.proc import heartfly

    path = tmp_path / "heartfly.toml"
    path.write_text(
        f'[checks.backup]\nkey = "{new_key()}"\nevery = "1h"\ntags = ["db"]\n'
        '[[maintenance]]\nname = "patching"\ncron = "0 2 * * 1"\nduration = "2h"\ntags = ["bd", "db"]\n'
        '[[maintenance]]\nname = "fine"\ncron = "0 3 * * 1"\nduration = "2h"\ntags = ["db"]\n'
    )
    result = heartfly("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "maintenance window" in line]
    assert warned == [
        'warning: maintenance window patching: no check in the file has the tag "bd" (checks made through the API'
        " may carry it)"
    ]


async def test_a_window_taken_out_of_the_file_while_stopped_has_what_it_held_told_at_the_next_start(
    write_config: ConfigWriter,
) -> None:
    clock = FakeClock(MONDAY_2AM)
    body = (
        f'[channels.journal]\ntype = "log"\n[checks.job]\nkey = "{new_key()}"\nevery = "1h"\nchannels = ["journal"]\n'
    )
    window = '[[maintenance]]\nname = "patching"\nstart = 2026-12-07T01:59:00Z\nduration = "1h"\nchecks = ["job"]\n'
    config = write_config(body + window)
    async with running(config, clock) as engine:
        await ping(engine, "job", Kind.FAIL)
        assert engine.checks["job"].state.window_hold == "patching"
    assert query(config, "SELECT count(*) FROM outbox")[0][0] == 0  # held for the summary
    clock.advance(600)
    config = write_config(body)  # the window taken out, mid-way
    async with running(config, clock) as engine:
        await engine.finish_load(lambda: None)
        await engine.writer.flush()
        assert engine.checks["job"].state.window_hold is None
    [(event, payload)] = query(config, "SELECT event, payload FROM outbox")
    assert event == "maintenance" and '"check": "job"' in payload
