"""When a check is next due. Pure: instants are UTC unix seconds passed in by the caller.

Cron expressions are evaluated on the check's local wall clock and each tick is converted to UTC
with fold=0, which makes daylight-saving changes safe for a monitor (Debian cron semantics):
- a fixed-time job (neither minute nor hour starts with "*") whose tick falls inside the skipped
  hour (02:30 on a spring-forward day) is run by cron right after the jump (03:00): a ping from
  the jump on counts for it, and it is due at the same wall time in the new offset (03:30);
- a wildcard job ("*/15 2 * * *", "0 */2 * * *") is not run in the skipped hour at all, so its
  skipped ticks are not expected;
- a tick inside the repeated hour (01:30 on a fall-back day) is expected once, at its first
  occurrence, never twice (cron runs a wildcard job in both passes; the extra ping is harmless).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from croniter import CroniterError

from heartfly.core.config import CheckConfig
from heartfly.core.cronticks import ticks as cron_ticks

# No tick within this many ticks means an expression like "0 0 30 2 *" (February 30th).
_MAX_TICKS = 1000


class ScheduleError(ValueError):
    pass


class Due(NamedTuple):
    at: float  # when the run is due (before grace)
    since: float  # a ping at or after this instant is that run (earlier than `at` only for skipped ticks)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _jump_instant(wall: datetime, tz: ZoneInfo) -> float:
    """The instant the clocks jumped over `wall`, a wall time that does not exist in `tz`."""
    lo = wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp()
    hi = wall.replace(tzinfo=tz, fold=0).astimezone(UTC).timestamp()
    before = datetime.fromtimestamp(lo, tz).utcoffset()
    while hi - lo > 1:  # offsets change on whole seconds; about a dozen steps for an hour
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi


# Macros with a fixed minute and hour; "@hourly" is "0 * * * *", a wildcard job.
_FIXED_MACROS = frozenset({"@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"})


@lru_cache(maxsize=4096)
def is_fixed_time(expr: str) -> bool:
    """Debian cron's rule: a job is fixed-time unless its minute or hour field starts with "*"."""
    if expr.startswith("@"):
        return expr in _FIXED_MACROS
    minute, hour = expr.split()[:2]
    return not (minute.startswith("*") or hour.startswith("*"))


@lru_cache(maxsize=1024)  # a first start asks it for every new check from one instant: once
def next_cron_due(expr: str, zone: str, after: float) -> Due:
    """The first cron tick not yet satisfied by a ping at `after`."""
    try:
        return _from_table(expr, zone, after) or _next_cron_due(expr, zone, after)
    except CroniterError as exc:  # e.g. "0 0 30 2 *": croniter gives up looking for February 30th
        raise ScheduleError(f'cron "{expr}" has no next tick: {exc}') from None


def _walk_from(expr: str, zone: str, after: float, always_early: bool) -> tuple[ZoneInfo, datetime]:
    """The zone, and the wall time after which the ticks that may be due after `after` begin."""
    tz = _zone(zone)
    moment = datetime.fromtimestamp(after, tz)
    local = moment.replace(tzinfo=None, microsecond=0)
    # Start an hour early when the clock changed within the hour before `after`: in a repeated
    # hour the wall time of `after` is ahead of ticks that map (fold=0) to instants after it, and
    # a skipped tick may still be ahead of a ping. Otherwise walls and instants keep in step, and
    # starting at `after` saves an hour of ticks (12 of them for "*/5 * * * *"). (A second before
    # it: fromtimestamp rounds to the microsecond, up to a tick just after `after`.)
    early = always_early or datetime.fromtimestamp(after - 3600, tz).utcoffset() != moment.utcoffset()
    return tz, local - (timedelta(hours=1) if early else timedelta(seconds=1))


def _judged(expr: str, tz: ZoneInfo, wall: datetime) -> tuple[float, float]:
    """A tick's instant, and the instant from which a ping counts for it: NaN for a tick that is
    never expected (cron skips a wildcard job's ticks in the skipped hour)."""
    at = wall.replace(tzinfo=tz).astimezone(UTC).timestamp()
    if datetime.fromtimestamp(at, tz).replace(tzinfo=None) == wall:
        return at, at
    return at, _jump_instant(wall, tz) if is_fixed_time(expr) else math.nan


def _next_cron_due(expr: str, zone: str, after: float, *, always_early: bool = False) -> Due:
    """next_cron_due by walking croniter's ticks: 0.3-0.5 ms an answer, most of it croniter's."""
    tz, begin = _walk_from(expr, zone, after, always_early)
    ticks = cron_ticks(expr, begin)
    for _ in range(_MAX_TICKS):
        at, since = _judged(expr, tz, ticks.get_next(datetime))
        if at > after and since > after:  # NaN > after is false
            return Due(at, since)
    raise ScheduleError(f'cron "{expr}" has no tick within {_MAX_TICKS} steps')


# A cron check asks for its next tick at every ping, and every cron check asks at a start: walking
# croniter for each (above) took a minute to start 100k cron checks. Which walls tick, and what
# each means, depends on the expression and the zone alone, so they are worked out once per hour of
# walls and shared. An answer from a table applies _next_cron_due's own tests to the same walls in
# the same order (a property test compares the two); one that runs off a table's end is walked.
# A table costs as much as 5-25 walks ("0 3 * * *" to "* * * * *"), so an hour's is made once it
# has been asked for _TABLE_AFTER times: checks that ask for a few hours (pings, a start) soon
# share tables, and a restart whose checks ask for thousands of hours (checks down for months, on
# many schedules) walks as before, never paying for tables it would not use again.
_TABLE_SPAN = 2  # hours of walls in a table (the one it is named by and the next), and the first wall after them
_TABLE_AFTER = 16
_TABLES_KEPT = 1024  # ~3 KB each at most ("* * * * *": 121 walls)
_ASKED_KEPT = 4096  # hours asked for without a table, counted (~0.5 MiB at most); then counted afresh
_EPOCH = datetime(1970, 1, 1)  # walls as seconds: a naive wall time read as if it were UTC


class _Table(NamedTuple):
    walls: array[float]  # ascending, as seconds from _EPOCH
    ats: array[float]
    sinces: array[float]  # NaN: never expected


_tables: dict[tuple[str, str, int], _Table] = {}  # oldest first: the first made goes first
_asked: dict[tuple[str, str, int], int] = {}


def _table(expr: str, zone: str, hour: int) -> _Table:
    tz = _zone(zone)
    start = _EPOCH + timedelta(hours=hour)
    end = start + timedelta(hours=_TABLE_SPAN)
    table = _Table(array("d"), array("d"), array("d"))
    try:
        ticks = cron_ticks(expr, start - timedelta(seconds=1))
        for _ in range(_MAX_TICKS):  # at most a tick a minute: 121 for "* * * * *"
            wall: datetime = ticks.get_next(datetime)
            at, since = _judged(expr, tz, wall)
            table.walls.append((wall - _EPOCH).total_seconds())
            table.ats.append(at)
            table.sinces.append(since)
            if wall >= end:
                break
    except CroniterError:
        pass  # no tick after these: a query that runs off the end walks, and is told why
    return table


def _from_table(expr: str, zone: str, after: float, *, always: bool = False) -> Due | None:
    """next_cron_due from the table of its hour; None to walk: the hour has no table yet (unless
    `always`), or the answer lies beyond the table."""
    _, begin = _walk_from(expr, zone, after, False)
    first = (begin - _EPOCH).total_seconds()
    key = (expr, zone, math.floor(first / 3600))
    table = _tables.get(key)
    if table is None:
        asked = _asked.get(key, 0) + 1
        if asked < _TABLE_AFTER and not always:
            if len(_asked) >= _ASKED_KEPT:
                _asked.clear()
            _asked[key] = asked
            return None
        _asked.pop(key, None)
        if len(_tables) >= _TABLES_KEPT:
            del _tables[next(iter(_tables))]
        table = _tables[key] = _table(*key)
    ats, sinces = table.ats, table.sinces
    for i in range(bisect_right(table.walls, first), len(ats)):  # the walls croniter gives after `begin`
        at, since = ats[i], sinces[i]
        if at > after and since > after:
            return Due(at, since)
    return None


def next_due(check: CheckConfig, anchor: float) -> Due:
    """The next run's due time, given the schedule anchor (last run event, or watch start).

    A pipeline step has no schedule of its own (its upstream sets its deadline): never due.
    """
    if check.after is not None:
        return Due(math.inf, math.inf)
    if check.cron is not None:
        return next_cron_due(check.cron, check.timezone, anchor)
    assert check.every is not None
    at = anchor + check.every  # one float for both: every pinged check of 100k keeps its own
    return Due(at, at)
