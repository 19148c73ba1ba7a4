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
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

from heartfly.core.config import CheckConfig

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


def next_cron_due(expr: str, zone: str, after: float) -> Due:
    """The first cron tick not yet satisfied by a ping at `after`."""
    try:
        return _next_cron_due(expr, zone, after)
    except CroniterError as exc:  # e.g. "0 0 30 2 *": croniter gives up looking for February 30th
        raise ScheduleError(f'cron "{expr}" has no next tick: {exc}') from None


def _next_cron_due(expr: str, zone: str, after: float, *, always_early: bool = False) -> Due:
    tz = _zone(zone)
    moment = datetime.fromtimestamp(after, tz)
    local = moment.replace(tzinfo=None, microsecond=0)
    # Start an hour early when the clock changed within the hour before `after`: in a repeated
    # hour the wall time of `after` is ahead of ticks that map (fold=0) to instants after it, and
    # a skipped tick may still be ahead of a ping. Otherwise walls and instants keep in step, and
    # starting at `after` saves croniter an hour of ticks (12 of them for "*/5 * * * *"). (A
    # second before it: fromtimestamp rounds to the microsecond, up to a tick just after `after`.)
    early = always_early or datetime.fromtimestamp(after - 3600, tz).utcoffset() != moment.utcoffset()
    ticks = croniter(expr, local - (timedelta(hours=1) if early else timedelta(seconds=1)))
    for _ in range(_MAX_TICKS):
        wall: datetime = ticks.get_next(datetime)
        at = wall.replace(tzinfo=tz).astimezone(UTC).timestamp()
        if at <= after:
            continue
        exists = datetime.fromtimestamp(at, tz).replace(tzinfo=None) == wall
        if not exists and not is_fixed_time(expr):
            continue  # cron skips a wildcard job's ticks in the skipped hour
        since = at if exists else _jump_instant(wall, tz)
        if since > after:
            return Due(at, since)
    raise ScheduleError(f'cron "{expr}" has no tick within {_MAX_TICKS} steps')


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
