from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from heartfly.core import schedule
from heartfly.core.config import CheckConfig
from heartfly.core.config_values import parse_cron
from heartfly.core.schedule import Due, ScheduleError, next_cron_due, next_due

HOUR = 3600.0
DAY = 86400.0
KEY = "k" * 22


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def _wall(instant: float, zone: str) -> str:
    """The zone's wall clock at `instant`, with its offset: "2026-03-29 03:30 +0200"."""
    return datetime.fromtimestamp(instant, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %z")


# The DST changes the tests are built around: the UTC instant the clocks change.
BERLIN_SPRING = _utc(2026, 3, 29, 1)  # 02:00 CET -> 03:00 CEST
BERLIN_FALL = _utc(2026, 10, 25, 1)  # 03:00 CEST -> 02:00 CET, 02:00-03:00 happens twice
NEW_YORK_SPRING = _utc(2026, 3, 8, 7)  # 02:00 EST -> 03:00 EDT
NEW_YORK_FALL = _utc(2026, 11, 1, 6)  # 02:00 EDT -> 01:00 EST, 01:00-02:00 happens twice
SYDNEY_FALL = _utc(2026, 4, 4, 16)  # 03:00 AEDT -> 02:00 AEST
SYDNEY_SPRING = _utc(2026, 10, 3, 16)  # 02:00 AEST -> 03:00 AEDT

TRANSITIONS = [
    ("Europe/Berlin", BERLIN_SPRING),
    ("Europe/Berlin", BERLIN_FALL),
    ("America/New_York", NEW_YORK_SPRING),
    ("America/New_York", NEW_YORK_FALL),
    ("Australia/Sydney", SYDNEY_FALL),
    ("Australia/Sydney", SYDNEY_SPRING),
]
TRANSITION_IDS = [f"{zone}-{_wall(instant, zone)[:10]}" for zone, instant in TRANSITIONS]


@pytest.mark.parametrize(("zone", "instant"), TRANSITIONS, ids=TRANSITION_IDS)
def test_the_transition_instants_used_below_are_where_the_zone_database_puts_them(zone: str, instant: float) -> None:
    tz = ZoneInfo(zone)
    assert datetime.fromtimestamp(instant - 1, tz).utcoffset() != datetime.fromtimestamp(instant, tz).utcoffset()
    assert _transitions(zone).count(instant) == 1


# --- plain cron, macros, `every` --------------------------------------------------------------------


def test_utc_cron_job_is_due_at_the_next_matching_minute() -> None:
    assert next_cron_due("*/15 * * * *", "UTC", _utc(2026, 1, 14, 12, 7)) == Due(
        _utc(2026, 1, 14, 12, 15), _utc(2026, 1, 14, 12, 15)
    )


def test_weekday_job_checked_after_fridays_run_is_due_on_monday() -> None:
    friday_after_run = _utc(2026, 1, 16, 9, 1)
    assert next_cron_due("0 9 * * 1-5", "UTC", friday_after_run).at == _utc(2026, 1, 19, 9)


def test_a_ping_exactly_at_a_tick_makes_the_following_tick_due() -> None:
    tick = _utc(2026, 1, 14, 12, 15)
    assert next_cron_due("*/15 * * * *", "UTC", tick) == Due(tick + 900, tick + 900)


def test_one_second_before_a_tick_that_tick_is_still_due() -> None:
    tick = _utc(2026, 1, 14, 12, 15)
    assert next_cron_due("*/15 * * * *", "UTC", tick - 1).at == tick


def test_fractions_of_a_second_around_a_tick_are_strictly_ordered() -> None:
    tick = _utc(2026, 1, 14, 12, 15)
    assert next_cron_due("*/15 * * * *", "UTC", tick - 0.25).at == tick
    assert next_cron_due("*/15 * * * *", "UTC", tick + 0.25).at == tick + 900


def test_outside_a_dst_change_a_tick_counts_from_its_own_instant() -> None:
    due = next_cron_due("30 2 * * *", "Europe/Berlin", _utc(2026, 1, 14, 12))
    assert due.since == due.at == _utc(2026, 1, 15, 1, 30)


def test_hourly_macro_is_due_at_the_top_of_the_next_hour() -> None:
    assert next_cron_due("@hourly", "UTC", _utc(2026, 1, 14, 12, 0, 5)).at == _utc(2026, 1, 14, 13)
    assert next_cron_due("@hourly", "UTC", _utc(2026, 1, 14, 13)).at == _utc(2026, 1, 14, 14)


def test_daily_macro_is_due_at_the_next_local_midnight() -> None:
    assert next_cron_due("@daily", "UTC", _utc(2026, 1, 14, 12)).at == _utc(2026, 1, 15)
    assert next_cron_due("@daily", "Europe/Berlin", _utc(2026, 1, 14, 12)).at == _utc(2026, 1, 14, 23)
    assert next_cron_due("@daily", "Asia/Kolkata", _utc(2026, 1, 14, 12)).at == _utc(2026, 1, 14, 18, 30)


def test_every_check_is_due_one_interval_after_the_anchor() -> None:
    check = CheckConfig(name="backup", key=KEY, every=3600.0)
    assert next_due(check, 1_780_000_000.5) == Due(1_780_003_600.5, 1_780_003_600.5)


def test_every_check_ignores_dst_changes() -> None:
    check = CheckConfig(name="backup", key=KEY, every=3600.0, timezone="Europe/Berlin")
    anchor = BERLIN_SPRING - 1800
    assert next_due(check, anchor) == Due(anchor + 3600, anchor + 3600)


def test_cron_check_is_due_at_its_next_tick_on_its_own_wall_clock() -> None:
    check = CheckConfig(name="report", key=KEY, cron="0 6 * * *", timezone="America/New_York")
    due = next_due(check, _utc(2026, 1, 14, 12))
    assert due == Due(_utc(2026, 1, 15, 11), _utc(2026, 1, 15, 11))
    assert _wall(due.at, "America/New_York") == "2026-01-15 06:00 -0500"


def test_cron_check_in_a_dst_zone_gets_the_dst_rules() -> None:
    check = CheckConfig(name="report", key=KEY, cron="30 2 * * *", timezone="Europe/Berlin")
    assert next_due(check, BERLIN_SPRING - HOUR) == Due(BERLIN_SPRING + 1800, BERLIN_SPRING)


def test_an_expression_that_never_matches_raises_schedule_error() -> None:
    # Config validation refuses it too; a schedule error is what the engine logs per check.
    with pytest.raises(ScheduleError):
        next_cron_due("0 0 30 2 *", "UTC", _utc(2026, 1, 14))


@pytest.mark.parametrize(
    ("expr", "runs"),
    [
        # Either day field starting with "*" restricts the days together with the other (AND):
        # odd days that are weekdays; the 1st only when it is a Sunday, Tuesday, Thursday or Saturday.
        ("0 4 */2 * 1-5", ["Thu 01-01", "Mon 01-05", "Wed 01-07", "Fri 01-09", "Tue 01-13"]),
        ("0 4 1 * */2", ["Thu 01-01", "Sun 02-01", "Sun 03-01", "Sat 08-01", "Tue 09-01"]),
        # Both restricted: either matches (OR), as in every cron.
        ("0 4 1 * 1", ["Thu 01-01", "Mon 01-05", "Mon 01-12", "Mon 01-19", "Mon 01-26"]),
    ],
)
def test_day_of_month_and_day_of_week_combine_as_cron_combines_them(expr: str, runs: list[str]) -> None:
    """Vixie/Debian cron: the days are those of both fields (OR) unless either field starts with "*",
    when they must match both (AND). Expected on more days than cron runs it, a job would be
    reported missed on days it was never meant to run."""
    after, got = _utc(2025, 12, 31, 12), []
    for _ in runs:
        after = next_cron_due(expr, "UTC", after).at
        got.append(datetime.fromtimestamp(after, UTC).strftime("%a %m-%d"))
    assert got == runs


@pytest.mark.parametrize(
    ("expr", "runs"),
    [
        # The 1st, or the first Monday (croniter alone: the first Mondays only, never the 1st).
        ("0 4 1 * mon#1", ["Thu 01-01", "Mon 01-05", "Sun 02-01", "Mon 02-02", "Sun 03-01"]),
        # The 1st, or the second Monday (croniter alone refused it: "never fires").
        ("0 4 1 * 1#2", ["Thu 01-01", "Mon 01-12", "Sun 02-01", "Mon 02-09", "Sun 03-01"]),
        # The 1st, or the last Friday (croniter's "L5"; croniter alone refused it: "never fires").
        ("0 4 1 * L5", ["Thu 01-01", "Fri 01-30", "Sun 02-01", "Fri 02-27", "Sun 03-01"]),
        ("0 4 1 * l5", ["Thu 01-01", "Fri 01-30", "Sun 02-01", "Fri 02-27", "Sun 03-01"]),
        # The weekday nearest the 15th, or any Monday (croniter alone: never a Monday but 15W's).
        ("0 4 15W * 1", ["Mon 01-05", "Mon 01-12", "Thu 01-15", "Mon 01-19", "Mon 01-26"]),
        # "?" restricts nothing (Quartz's "no specific value"): the other field alone says the days.
        ("0 4 ? * mon#1", ["Mon 01-05", "Mon 02-02", "Mon 03-02", "Mon 04-06", "Mon 05-04"]),
        ("0 4 15W * ?", ["Thu 01-15", "Mon 02-16", "Mon 03-16", "Wed 04-15", "Fri 05-15"]),
    ],
)
def test_a_nth_or_nearest_weekday_day_field_still_combines_with_the_other_as_either(expr: str, runs: list[str]) -> None:
    """Both day fields restricted, one with "#" (nth weekday) or "W" (nearest weekday): a day
    matching either is a day to run, as the README says and cronsim (Healthchecks) runs them."""
    after, got = _utc(2025, 12, 31, 12), []
    for _ in runs:
        after = next_cron_due(parse_cron(expr), "UTC", after).at
        got.append(datetime.fromtimestamp(after, UTC).strftime("%a %m-%d"))
    assert got == runs


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("61 * * * *", 'its minute field "61" cannot be read'),
        ("0 6 * * 5L", 'its weekday field "5L" cannot be read'),  # cronsim's "last Friday": not croniter's
        ("0 6 LW * *", 'its day field "LW" cannot be read'),
        ("0 6 * * *  *", "is not a five-field cron expression"),
    ],
)
def test_a_cron_expression_that_cannot_be_read_names_the_field_at_fault(expr: str, words: str) -> None:
    # Five fields, one unreadable, was "not a five-field cron expression": a user counted five.
    with pytest.raises(ValueError, match=r"\(minute hour day month weekday\)$") as refused:
        parse_cron(expr)
    assert words in str(refused.value)


def test_a_day_of_week_star_step_cannot_make_an_impossible_date_fire() -> None:
    # Vixie cron: February 31st, and (AND, as "*/7" starts with "*") a Sunday: never.
    with pytest.raises(ValueError, match="never fires"):
        parse_cron("0 0 31 2 */7")


@pytest.mark.parametrize(
    ("expr", "runs"),
    [
        ("0 18-18 * * *", ["Thu 01-01 18:00", "Fri 01-02 18:00", "Sat 01-03 18:00"]),  # croniter: every hour
        ("0 18-18/2 * * *", ["Thu 01-01 18:00", "Fri 01-02 18:00", "Sat 01-03 18:00"]),  # croniter: */2
        ("30-30 4 * * *", ["Thu 01-01 04:30", "Fri 01-02 04:30", "Sat 01-03 04:30"]),
        ("0 4 15-15 * *", ["Thu 01-15 04:00", "Sun 02-15 04:00", "Sun 03-15 04:00"]),
        ("0 4 1 12-12 *", ["Tue 12-01 04:00", "Wed 12-01 04:00", "Fri 12-01 04:00"]),
        ("0 4 1 DEC-dec *", ["Tue 12-01 04:00", "Wed 12-01 04:00", "Fri 12-01 04:00"]),
        ("0 4 * * mon-MON", ["Mon 01-05 04:00", "Mon 01-12 04:00", "Mon 01-19 04:00"]),
        ("0 4 * * 7-7", ["Sun 01-04 04:00", "Sun 01-11 04:00", "Sun 01-18 04:00"]),
        ("0 4 20 * 5-5", ["Fri 01-02 04:00", "Fri 01-09 04:00", "Fri 01-16 04:00", "Tue 01-20 04:00"]),  # either
    ],
)
def test_a_range_whose_bounds_are_equal_is_that_one_value_as_cron_reads_it(expr: str, runs: list[str]) -> None:
    """cron (and cronsim, Healthchecks') reads "18-18" as 18; croniter reads a range with equal
    bounds as the whole cycle, and a daily job written so was expected every hour: told missed 23
    times a day."""
    after, got = _utc(2025, 12, 31, 23, 30), []
    for _ in runs:
        after = next_cron_due(parse_cron(expr), "UTC", after).at
        got.append(datetime.fromtimestamp(after, UTC).strftime("%a %m-%d %H:%M"))
    assert got == runs


@pytest.mark.parametrize(
    ("expr", "runs"),
    [
        ("0 4 * * 1/2", ["Fri 01-02", "Sun 01-04", "Mon 01-05", "Wed 01-07", "Fri 01-09"]),  # croniter: no Sunday
        ("0 4 * * 6/1", ["Sat 01-03", "Sun 01-04", "Sat 01-10", "Sun 01-11", "Sat 01-17"]),
        ("0 4 * * mon/3", ["Thu 01-01", "Sun 01-04", "Mon 01-05", "Thu 01-08", "Sun 01-11"]),
        ("0 4 * * 7/3", ["Sun 01-04", "Sun 01-11", "Sun 01-18", "Sun 01-25", "Sun 02-01"]),  # croniter: Sat, Sun, Wed
        ("0 4 13 * 5/2", ["Fri 01-02", "Sun 01-04", "Fri 01-09", "Sun 01-11", "Tue 01-13"]),  # either day field
    ],
)
def test_a_weekday_with_a_step_runs_to_sunday_seven_as_cron_reads_it(expr: str, runs: list[str]) -> None:
    """ "1/2" is "1-7/2" in cron (cronie) and cronsim (Healthchecks): Monday, Wednesday, Friday and
    Sunday. croniter stopped at Saturday: Sunday's run was never expected (a job that skipped it
    was never told), and "7/3" was read as Sunday, Wednesday and Saturday: told missed twice a week."""
    after, got = _utc(2025, 12, 31, 23, 30), []
    for _ in runs:
        after = next_cron_due(parse_cron(expr), "UTC", after).at
        got.append(datetime.fromtimestamp(after, UTC).strftime("%a %m-%d"))
    assert got == runs


def test_a_date_that_never_comes_is_refused_when_written_with_equal_ranges_too() -> None:
    with pytest.raises(ValueError, match="never fires"):
        parse_cron("0 4 31-31 2-2 *")


# --- the skipped hour (spring forward) ---------------------------------------------------------------

SPRING = [
    pytest.param("Europe/Berlin", BERLIN_SPRING, "2026-03-29 03:30 +0200", _utc(2026, 3, 30, 0, 30), id="berlin"),
    pytest.param("America/New_York", NEW_YORK_SPRING, "2026-03-08 03:30 -0400", _utc(2026, 3, 9, 6, 30), id="new-york"),
]


@pytest.mark.parametrize(("zone", "jump", "wall", "next_day"), SPRING)
def test_daily_job_in_the_skipped_hour_is_due_at_the_same_wall_time_after_the_jump(
    zone: str, jump: float, wall: str, next_day: float
) -> None:
    due = next_cron_due("30 2 * * *", zone, jump - 12 * HOUR)
    assert due == Due(jump + 1800, jump)
    assert _wall(due.at, zone) == wall


@pytest.mark.parametrize(("zone", "jump", "wall", "next_day"), SPRING)
def test_one_second_before_the_jump_the_skipped_tick_is_still_due(
    zone: str, jump: float, wall: str, next_day: float
) -> None:
    assert next_cron_due("30 2 * * *", zone, jump - 1) == Due(jump + 1800, jump)


@pytest.mark.parametrize(("zone", "jump", "wall", "next_day"), SPRING)
def test_a_ping_at_the_jump_instant_satisfies_the_skipped_tick(
    zone: str, jump: float, wall: str, next_day: float
) -> None:
    # cron runs the skipped 02:30 job right after the jump (03:00); that ping is the 02:30 run.
    assert next_cron_due("30 2 * * *", zone, jump) == Due(next_day, next_day)


@pytest.mark.parametrize(("zone", "jump", "wall", "next_day"), SPRING)
def test_a_ping_between_the_jump_and_the_due_time_satisfies_the_skipped_tick(
    zone: str, jump: float, wall: str, next_day: float
) -> None:
    assert next_cron_due("30 2 * * *", zone, jump + 600) == Due(next_day, next_day)


@pytest.mark.parametrize(("zone", "jump", "wall", "next_day"), SPRING)
def test_several_ticks_in_the_skipped_hour_are_all_satisfied_by_one_ping_at_the_jump(
    zone: str, jump: float, wall: str, next_day: float
) -> None:
    assert next_cron_due("0,30 2 * * *", zone, jump - 12 * HOUR) == Due(jump, jump)
    assert next_cron_due("0,30 2 * * *", zone, jump) == Due(next_day - 1800, next_day - 1800)


@pytest.mark.parametrize(("zone", "jump", "wall", "next_day"), SPRING)
def test_a_skipped_tick_and_the_real_tick_it_lands_on_are_expected_once(
    zone: str, jump: float, wall: str, next_day: float
) -> None:
    # 02:30 and 03:30 are the same instant on the spring-forward day.
    assert next_cron_due("30 2,3 * * *", zone, jump - 12 * HOUR) == Due(jump + 1800, jump)
    assert next_cron_due("30 2,3 * * *", zone, jump + 1800) == Due(next_day, next_day)


# --- the repeated hour (fall back) -------------------------------------------------------------------

FALL = [
    pytest.param(
        "Europe/Berlin",
        "30 2 * * *",
        _utc(2026, 10, 25, 0, 30),
        "2026-10-25 02:30 +0200",
        _utc(2026, 10, 26, 1, 30),
        id="berlin-0230",
    ),
    pytest.param(
        "America/New_York",
        "30 1 * * *",
        _utc(2026, 11, 1, 5, 30),
        "2026-11-01 01:30 -0400",
        _utc(2026, 11, 2, 6, 30),
        id="new-york-0130",
    ),
]


@pytest.mark.parametrize(("zone", "expr", "first", "wall", "next_day"), FALL)
def test_daily_job_in_the_repeated_hour_is_due_at_its_first_occurrence(
    zone: str, expr: str, first: float, wall: str, next_day: float
) -> None:
    due = next_cron_due(expr, zone, first - 12 * HOUR)
    assert due == Due(first, first)
    assert _wall(due.at, zone) == wall


@pytest.mark.parametrize(("zone", "expr", "first", "wall", "next_day"), FALL)
def test_after_a_ping_at_the_first_occurrence_the_next_due_is_the_next_day_not_an_hour_later(
    zone: str, expr: str, first: float, wall: str, next_day: float
) -> None:
    due = next_cron_due(expr, zone, first)
    assert due.at != first + HOUR
    assert due == Due(next_day, next_day)


@pytest.mark.parametrize(("zone", "expr", "first", "wall", "next_day"), FALL)
def test_a_ping_during_the_second_pass_through_the_repeated_hour_leaves_the_next_day_due(
    zone: str, expr: str, first: float, wall: str, next_day: float
) -> None:
    for after in (first + HOUR - 60, first + HOUR, first + HOUR + 60):
        assert next_cron_due(expr, zone, after) == Due(next_day, next_day)


# --- hourly jobs walked across the transition days ---------------------------------------------------


def _walk(expr: str, zone: str, start: float, end: float) -> list[Due]:
    dues: list[Due] = []
    after = start
    while after < end:
        due = next_cron_due(expr, zone, after)
        assert due.since > after, f"{due} would be satisfied by a ping at {after}"
        assert due.since <= due.at
        dues.append(due)
        after = due.at
    return dues


@pytest.mark.parametrize("expr", ["0 * * * *", "30 * * * *"])
@pytest.mark.parametrize(("zone", "change"), TRANSITIONS, ids=TRANSITION_IDS)
def test_hourly_job_walked_across_a_transition_day_is_due_at_strictly_increasing_instants_at_most_two_hours_apart(
    expr: str, zone: str, change: float
) -> None:
    start = change - 30 * HOUR
    dues = _walk(expr, zone, start, change + 30 * HOUR)
    instants = [start] + [due.at for due in dues]
    assert all(a < b for a, b in pairwise(instants))
    assert len({due.at for due in dues}) == len(dues)
    assert max(b - a for a, b in pairwise(instants)) <= 2 * HOUR
    assert len(dues) >= 59  # at least one per real hour but the repeated one


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        pytest.param("Europe/Berlin", BERLIN_SPRING, id="berlin"),
        pytest.param("America/New_York", NEW_YORK_SPRING, id="ny"),
    ],
)
def test_on_a_spring_forward_day_an_hourly_job_skips_the_missing_hour(zone: str, change: float) -> None:
    half_past = _walk("30 * * * *", zone, change - 30 * HOUR, change + 30 * HOUR)
    # A wildcard job is not run in the skipped hour, so no tick counts from the jump...
    assert [due for due in half_past if due.since != due.at] == []
    # ...and the next one after 01:30 (old offset) is 03:30 (new offset), one real hour later.
    assert change + 1800 in [due.at for due in half_past]
    # At the full hour the skipped 02:00 is the jump instant itself (and the same instant as 03:00).
    full_hour = _walk("0 * * * *", zone, change - 30 * HOUR, change + 30 * HOUR)
    assert [due for due in full_hour if due.since != due.at] == []
    assert change in [due.at for due in full_hour]


@pytest.mark.parametrize(
    ("zone", "change"),
    [pytest.param("Europe/Berlin", BERLIN_FALL, id="berlin"), pytest.param("America/New_York", NEW_YORK_FALL, id="ny")],
)
def test_on_a_fall_back_day_the_repeated_hour_is_expected_once(zone: str, change: float) -> None:
    dues = _walk("0 * * * *", zone, change - 30 * HOUR, change + 30 * HOUR)
    ats = [due.at for due in dues]
    # The repeated hour's tick (fold=0) is `change - 1h`; its second occurrence (`change`) is never due.
    assert change - HOUR in ats
    assert change not in ats
    assert change + HOUR in ats


# --- wildcard jobs in the skipped hour ----------------------------------------------------------------
#
# Debian cron (and cronsim, which mimics it) only catches up skipped ticks of *fixed-time* jobs, those
# whose minute and hour fields both do not start with "*" (vixie cron's MIN_STAR / HR_STAR flags).
# A job like "*/15 2 * * *" or "0 */2 * * *" simply does not run in the skipped hour, so it must not
# be expected there (that would be a false alarm).


def test_quarter_hourly_job_restricted_to_the_skipped_hour_is_next_due_the_following_day() -> None:
    due = next_cron_due("*/15 2 * * *", "Europe/Berlin", _utc(2026, 3, 28, 12))
    # cron's next run: 2026-03-30 02:00 CEST, not 2026-03-29 03:00 CEST.
    assert due.at == _utc(2026, 3, 30, 0)


def test_two_hourly_job_is_not_expected_in_the_skipped_hour() -> None:
    due = next_cron_due("0 */2 * * *", "America/New_York", NEW_YORK_SPRING - 2 * HOUR)  # after 00:00 EST
    # cron's next run: 04:00 EDT = 08:00 UTC, not 03:00 EDT.
    assert due.at == NEW_YORK_SPRING + HOUR


# --- property tests against cronsim ------------------------------------------------------------------
#
# How cronsim (2.8) treats DST, found by experiment; it follows Debian cron:
# * "Fixed-time" 5-field expressions (minute and hour fields do not start with "*") are iterated on the
#   naive wall clock and each tick is localised with fold=0:
#   - a tick in the skipped hour is moved forward minute by minute to the first wall time that exists,
#     i.e. returned as the jump instant (02:30 on 2026-03-29 Berlin -> 03:00 CEST = 01:00 UTC);
#     several skipped ticks (02:00, 02:30) collapse into that one run;
#   - a tick in the repeated hour is returned once, at its first occurrence (fold=0);
#   - because the iteration restarts from the start's naive wall time, a start inside the *second*
#     pass of a repeated hour yields the first-pass tick, which is *before* the start
#     (CronSim("45 1 * * *", 01:10 EST on 2026-11-01 NY) -> 01:45 EDT, 35 minutes earlier).
#     The helpers below therefore skip cronsim ticks that are not strictly after the start.
# * Other ("wildcard") expressions are iterated on real time: a wall time in the skipped hour simply
#   never occurs (no run at all, e.g. "*/15 2 * * *" does not run on 2026-03-29 Berlin), and a wall
#   time in the repeated hour runs twice, the second time with fold=1 ("0 * * * *" runs at 01:00 EDT
#   and again at 01:00 EST on 2026-11-01 NY).
# * Macros like @hourly are not supported (CronSimError "Wrong number of fields").

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
LISTED_CHANGES = [BERLIN_SPRING, BERLIN_FALL, NEW_YORK_SPRING, NEW_YORK_FALL, SYDNEY_FALL, SYDNEY_SPRING]
SPAN_START = _utc(2025, 7, 1)
SPAN_END = _utc(2027, 7, 1)


@cache
def _transitions(zone: str) -> tuple[float, ...]:
    """Every instant between 2025 and 2029 at which the zone's UTC offset changes."""
    tz = ZoneInfo(zone)

    def offset(t: float) -> timedelta | None:
        return datetime.fromtimestamp(t, tz).utcoffset()

    found: list[float] = []
    t, end, step = _utc(2025, 1, 1), _utc(2029, 1, 1), 6 * HOUR
    while t < end:
        if offset(t) != offset(t + step):
            lo, hi = t, t + step
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            found.append(hi)
        t += step
    return tuple(found)


def _no_transition_between(zone: str, start: float, end: float) -> bool:
    return not any(start <= t <= end for t in _transitions(zone))


def _cronsim_runs(expr: str, zone: str, after: float) -> Iterator[datetime]:
    """cronsim's runs strictly after `after`, in order (dropping its ticks before the start)."""
    for run in CronSim(expr, datetime.fromtimestamp(after, ZoneInfo(zone))):
        if run.timestamp() > after:
            yield run


def _is_second_pass(run: datetime) -> bool:
    """A run at the second occurrence of a repeated wall time (cronsim does this for wildcard jobs)."""
    return run.fold == 1 and run.replace(fold=0).utcoffset() != run.utcoffset()


def _is_fixed_time(expr: str) -> bool:
    minute, hour = expr.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


@st.composite
def cron_exprs(draw: st.DrawFn) -> str:
    number = st.integers(0, 59).map(str)
    minute = draw(
        st.one_of(
            st.just("*"),
            number,
            st.integers(2, 30).map(lambda n: f"*/{n}"),
            st.lists(st.integers(0, 59), min_size=2, max_size=4, unique=True).map(
                lambda ms: ",".join(map(str, sorted(ms)))
            ),
        )
    )
    near_change = st.sampled_from([1, 2, 3])  # the hours that DST skips or repeats
    hour = draw(
        st.one_of(
            st.just("*"),
            st.integers(0, 23).map(str),
            near_change.map(str),
            near_change.map(str),
            st.tuples(st.integers(0, 22), st.integers(1, 12)).map(lambda ab: f"{ab[0]}-{min(ab[0] + ab[1], 23)}"),
        )
    )
    step = st.integers(2, 7).map(lambda n: f"*/{n}")  # starts with "*": the day fields AND, as in cron
    dom = draw(st.one_of(st.just("*"), st.just("*"), st.just("*"), st.integers(1, 28).map(str), step))
    month = draw(st.one_of(st.just("*"), st.just("*"), st.just("*"), st.integers(1, 12).map(str)))
    weekday = draw(st.one_of(st.just("*"), st.just("*"), st.integers(0, 6).map(str), step))
    return f"{minute} {hour} {dom} {month} {weekday}"


@st.composite
def zones_and_instants(draw: st.DrawFn) -> tuple[str, float]:
    """A zone and an instant in 2025-2027; most instants are within hours of one of the DST changes
    listed above, in that change's zone (UTC and Asia/Kolkata get the same instants)."""
    zone = draw(st.sampled_from(ZONES))
    if draw(st.integers(0, 3)) == 0:
        return zone, float(draw(st.integers(int(SPAN_START), int(SPAN_END))))
    own = [change for z, change in TRANSITIONS if z == zone]
    change = draw(st.sampled_from(own or LISTED_CHANGES))
    minutes = draw(st.one_of(st.integers(-90, 90), st.integers(-4 * 60, 4 * 60), st.integers(-36 * 60, 36 * 60)))
    return zone, change + 60 * minutes + draw(st.sampled_from([0.0, 0.0, -1.0, 1.0, 0.5]))


PROPERTY_SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(expr=cron_exprs(), zone_after=zones_and_instants())
@example(expr="* * * * *", zone_after=("Europe/Berlin", BERLIN_FALL - 1800))
@example(expr="0 * * * *", zone_after=("America/New_York", NEW_YORK_FALL - 1800))
@example(expr="30 2 * * *", zone_after=("Europe/Berlin", BERLIN_SPRING - 1))
@example(expr="45 1 * * *", zone_after=("America/New_York", NEW_YORK_FALL + 600))
def test_cronsims_next_run_is_never_before_the_window_that_counts(expr: str, zone_after: tuple[str, float]) -> None:
    """Property 1, no false alarm: `since` <= c, compared as UTC instants.

    c is the first run cronsim yields that is (a) strictly after `after` -- cronsim can yield a
    fixed-time tick *before* its start when starting in the second pass of a repeated hour, so such
    ticks are dropped -- and (b) not a second-pass run of a repeated hour (fold=1, which cronsim
    yields only for wildcard jobs such as "0 * * * *"). (b) is excluded on purpose: next_cron_due
    expects a repeated wall time once, at its first occurrence; the extra run's ping just arrives
    before `since` and the job's following run is the one that satisfies the due tick.

    `since`, not `at`, is compared because for a fixed-time tick in the skipped hour cronsim (like
    Debian cron) runs the job at the jump instant, 03:00, while `at` is 03:30: there `since` equals
    c exactly, so the comparison is <=.
    """
    zone, after = zone_after
    due = next_cron_due(expr, zone, after)
    run = next(r for r in _cronsim_runs(expr, zone, after) if not _is_second_pass(r))
    assert due.since > after
    assert due.since <= due.at
    assert due.since <= run.timestamp(), f"cronsim runs at {run.isoformat()}"


@PROPERTY_SETTINGS
@given(expr=cron_exprs(), zone_after=zones_and_instants())
@example(expr="30 2 * * *", zone_after=("Europe/Berlin", _utc(2026, 1, 14, 12)))
@example(expr="*/7 * 1 * 0", zone_after=("Asia/Kolkata", NEW_YORK_FALL))
def test_away_from_dst_changes_the_due_time_is_exactly_cronsims_next_run(
    expr: str, zone_after: tuple[str, float]
) -> None:
    """Property 2: `at` == `since` == c exactly, where c is cronsim's first run strictly after `after`.

    Only checked when the zone's UTC offset does not change anywhere in [after - 2 days, c + 2 days].
    The window runs to c (not just two days around `after`) because a sparse expression's next tick
    may be weeks away, and a skipped or repeated hour on the way legitimately changes the answers.
    """
    zone, after = zone_after
    run = next(_cronsim_runs(expr, zone, after)).timestamp()
    assume(_no_transition_between(zone, after - 2 * DAY, run + 2 * DAY))
    assert next_cron_due(expr, zone, after) == Due(run, run)


@PROPERTY_SETTINGS
@given(expr=cron_exprs(), zone_after=zones_and_instants())
@example(expr="30 2 * * *", zone_after=("Europe/Berlin", BERLIN_SPRING - 1))
@example(expr="30 * * * *", zone_after=("America/New_York", NEW_YORK_SPRING - 1))
@example(expr="0,30 2 * * *", zone_after=("Australia/Sydney", SYDNEY_SPRING - 60))
def test_a_cron_run_falls_between_since_and_at_of_every_due_tick(expr: str, zone_after: tuple[str, float]) -> None:
    """Property 3, the due tick is reachable: some cronsim run r has `since` <= r <= `at`.

    Without it a check could go late although the job ran exactly as cron runs it. It holds for
    fixed-time jobs (cron catches their skipped ticks up at the jump instant) and for wildcard jobs
    (their skipped ticks are not expected at all, as cron does not run them).
    """
    zone, after = zone_after
    due = next_cron_due(expr, zone, after)
    run = next(_cronsim_runs(expr, zone, due.since - 1)).timestamp()
    assert due.since <= run <= due.at


def test_an_hours_cron_ticks_are_walked_until_it_is_asked_for_often_then_come_from_a_shared_table() -> None:
    expr, zone, one_pm = "7,37 * * * *", "Asia/Kathmandu", _utc(2031, 5, 6, 7, 15)  # 13:00 there; no other test asks
    afters = [one_pm + 30 + 60.5 * n for n in range(schedule._TABLE_AFTER + 2)]  # within 13:00-13:18
    walked = [schedule._next_cron_due(expr, zone, after) for after in afters]
    tables = set()
    for n, after in enumerate(afters, start=1):
        assert next_cron_due(expr, zone, after) == walked[n - 1]
        tables |= {key for key in schedule._tables if key[:2] == (expr, zone)}
        assert len(tables) == (0 if n < schedule._TABLE_AFTER else 1)
    seven_past = one_pm + 7 * 60
    assert schedule._from_table(expr, zone, afters[0], always=True) == walked[0] == Due(seven_past, seven_past)
