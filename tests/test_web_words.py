"""The dashboard's pure helpers: schedules in words, relative times, chart geometry."""

from __future__ import annotations

from typing import Any

import pytest

from heartfly.core.assertions import parse_assertion
from heartfly.core.localtime import stamp
from heartfly.core.units import human_duration
from heartfly.web import charts
from heartfly.web.words import cron_words, percent, relative, schedule_words
from tests.conftest import check

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 3 * * *", "every day at 03:00"),
        ("30 2 * * 1-5", "every weekday at 02:30"),
        ("0 9 * * 0,6", "every weekend day at 09:00"),
        ("15 4 * * mon", "every Monday at 04:15"),
        ("0 8,20 * * *", "every day at 08:00 and 20:00"),
        ("*/15 * * * *", "every 15 minutes"),
        ("5 * * * *", "every hour at minute 5"),
        ("0 */6 * * *", "every 6 hours at minute 0"),
        ("0 0 1 * *", "on day 1 of every month at 00:00"),
        ("0 6 24 12 *", "every year on December 24 at 06:00"),
        ("@daily", "every day at 00:00"),
        ("* * * * *", "every minute"),
        ("0 3 1-7 * 1", None),  # too clever for words: shown as the expression
    ],
)
def test_common_cron_expressions_read_as_words(expr: str, words: str | None) -> None:
    assert cron_words(expr) == words


def test_a_schedule_names_its_zone_when_a_time_of_day_depends_on_it() -> None:
    assert schedule_words(check(cron="0 3 * * *", timezone="Europe/Berlin")) == "every day at 03:00 Europe/Berlin"
    assert schedule_words(check(cron="*/5 * * * *", timezone="Europe/Berlin")) == "every 5 minutes"
    assert schedule_words(check(cron="0 3 1-7 * 1")) == 'cron "0 3 1-7 * 1" (UTC)'
    assert schedule_words(check(every=900.0)) == "every 15 min"
    assert schedule_words(check(every=3600.0)) == "every hour"
    assert schedule_words(check(every=5400.0)) == "every 1 h 30 min"


def test_times_read_relative_to_now_and_log_stamps_absolute() -> None:
    assert relative(NOW - 3, NOW) == "just now"
    assert relative(NOW - 180, NOW) == "3 min ago"
    assert relative(NOW + 7200, NOW) == "in 2 h"
    assert relative(NOW - 5 * 86400, NOW) == "5 d ago"
    assert relative(NOW - 7980.4, NOW) == "2 h 13 min ago"  # the one duration formatter's words
    assert relative(None, NOW) == "never"
    assert stamp(NOW - 60, NOW) == "20:25:40"
    assert stamp(NOW - 86400, NOW) == "May 27 20:26:40"
    assert human_duration(0.25) == "250 ms" and human_duration(754) == "12 min 34 s"


def run(at: float, outcome: str, duration: float, exit_status: int | None = None) -> dict[str, Any]:
    return {"started_at": at, "ended_at": at + duration, "duration": duration, "outcome": outcome,
            "exit_status": exit_status}  # fmt: skip


def test_a_lone_success_that_breaks_an_assertion_shows_as_broken_not_succeeded() -> None:
    ends = [
        {"at": NOW - 200, "kind": "success", "exit_status": None, "metrics": {"rows": 0.0}},
        {"at": NOW - 100, "kind": "success", "exit_status": None, "metrics": {"rows": 5.0}},
        {"at": NOW - 50, "kind": "success", "exit_status": None, "metrics": None},  # no metric: broken too
    ]
    items = charts.events([], ends, [], [], NOW, (parse_assertion("rows > 0"),))
    assert [e["outcome"] for e in items] == ["assertion", "success", "assertion"]
    assert [e["outcome"] for e in charts.events([], ends, [], [], NOW)] == ["success"] * 3  # no assertions


def test_events_merge_runs_lone_pings_missed_deadlines_and_open_runs_oldest_first() -> None:
    runs = [run(NOW - 300, "fail", 20.0, 3), run(NOW - 600, "success", 10.0)]
    ends = [
        {"at": NOW - 280, "kind": "fail", "exit_status": 3},  # closed the first run: shown once, as the run
        {"at": NOW - 100, "kind": "success", "exit_status": None},  # a lone success ping
    ]
    flips: list[dict[str, Any]] = [
        {"new": "down", "reason": "missed", "at": NOW - 900},
        {"new": "late", "reason": None, "at": NOW - 950},
    ]
    items = charts.events(runs, ends, flips, [NOW - 30], NOW)
    assert [(e["outcome"], e["duration"]) for e in items] == [
        ("missed", None),
        ("success", 10.0),
        ("fail", 20.0),
        ("success", None),
        ("running", 30.0),
    ]


def test_a_run_given_up_at_its_limit_takes_the_first_end_of_its_run_id_after_its_start_and_no_other() -> None:
    overran = run(NOW - 600, "overrun", 20.0) | {"run_id": "nightly"}
    ends = [
        {"at": NOW - 570, "kind": "success", "exit_status": 0, "run_id": "nightly"},  # its late end
        {"at": NOW - 100, "kind": "success", "exit_status": 0, "run_id": "nightly"},  # the id again, no start
        {"at": NOW - 50, "kind": "fail", "exit_status": 2, "run_id": None},
    ]
    items = charts.events([overran], ends, [], [], NOW)
    assert [(e["outcome"], e["duration"]) for e in items] == [("overrun", 20.0), ("success", None), ("fail", None)]


def test_a_run_given_up_at_its_limit_takes_no_end_sent_after_its_run_id_started_a_later_run() -> None:
    # rid=$(date +%H) repeats every day: the 03 run given up on day 1 (killed, no end ever), day
    # 2's 03 run started and ended, then an end of 03 came without a start. It is not day 1's late
    # end (a later run of that id had started since): the strip hid it, a run fewer than the pings.
    runs = [run(NOW - 300, "success", 10.0) | {"run_id": "03"}, run(NOW - 900, "overrun", 20.0) | {"run_id": "03"}]
    ends = [
        {"at": NOW - 100, "kind": "fail", "exit_status": 1, "run_id": "03"},  # a run of its own
        {"at": NOW - 290, "kind": "success", "exit_status": 0, "run_id": "03"},  # closed day 2's run
    ]
    items = charts.events(runs, ends, [], [], NOW)
    assert [(e["outcome"], e["duration"]) for e in items] == [("overrun", 20.0), ("success", 10.0), ("fail", None)]


def test_the_timeline_is_right_aligned_with_heights_by_duration_and_titles_in_words() -> None:
    items = charts.events([run(NOW - 600, "success", 10.0), run(NOW - 300, "fail", 40.0, 2)], [], [], [], NOW)
    chart = charts.timeline(items)
    assert chart.width == charts.TIMELINE_SLOTS * charts.SLOT
    ok, bad = chart.bars
    assert bad.x > ok.x and bad.x + bad.width <= chart.width  # newest at the right edge
    assert bad.height > ok.height and (ok.css, bad.css) == ("ok", "bad")
    assert bad.title.startswith("failed (exit 2) · 40 s · ")
    assert chart.summary == "last 2: 1 succeeded, 1 failed"


def test_the_duration_chart_draws_the_max_runtime_line_when_it_fits() -> None:
    items = charts.events([run(NOW - 600, "success", 50.0), run(NOW - 300, "overrun", 60.0)], [], [], [], NOW)
    chart = charts.durations(items, max_runtime=60.0)
    assert chart.limit_y is not None and 0 < chart.limit_y < chart.height
    assert charts.durations(items, max_runtime=3600.0).limit_y is None  # far off the scale
    assert [b.css for b in chart.bars] == ["ok", "slow"]


@pytest.mark.parametrize(
    ("share", "words"),
    [
        (1.0, "100.00 %"),
        (0.99998, "99.99 %"),
        (0.5, "50.00 %"),
        (1 / 7, "14.29 %"),
        (0.00001, "0.01 %"),
        (0.0, "0.00 %"),
    ],
)
def test_an_availability_is_whole_only_when_it_is(share: float, words: str) -> None:
    assert percent(share) == words


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("*/45 * * * *", None),  # :00 and :45, 15 minutes apart at the hour: not every 45 minutes
        ("*/7 * * * *", None),
        ("*/20 * * * *", "every 20 minutes"),
        ("*/1 * * * *", "every minute"),
        ("0 */5 * * *", None),  # 20:00, then 00:00: four hours
        ("15 */1 * * *", "every hour at minute 15"),
        ("0 */8 * * *", "every 8 hours at minute 0"),
    ],
)
def test_a_step_that_does_not_divide_the_hour_or_day_is_not_said_to_repeat_evenly(expr: str, words: str | None) -> None:
    assert cron_words(expr) == words
