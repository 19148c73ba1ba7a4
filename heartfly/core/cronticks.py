"""A cron expression's wall-clock ticks, from croniter, with the days cron itself runs a job on.

croniter matches a day on either day field (OR) unless one of them is exactly "*"; Vixie and
Debian cron (and cronsim, as Healthchecks) match both (AND) whenever either field *starts* with
"*": "0 4 */2 * 1-5" runs on odd days that are weekdays, not on every odd day and every weekday.
Expecting the extra days would report a job missed on days it was never meant to run.

Nor does croniter OR the fields when one holds "#" (the nth weekday), "L" in the day of week
(croniter's "L5", the last Friday) or "W" (the weekday nearest a day): "0 4 1 * mon#1" gave the
first Mondays alone, "0 4 15W * 1" never a Monday but 15W's, and "0 4 1 * 1#2" and "0 4 1 * L5"
were refused as never firing. Those are walked as two expressions, each with one
day field, and their ticks merged: the 1st and the first Monday, as cronsim runs them. A "?"
(Quartz's "no specific value") restricts nothing: "0 4 ? * mon#1" runs on the first Mondays.

croniter also reads a range whose bounds are equal ("18-18", "mon-mon", "7-7/2") as the whole
cycle, where cron reads that one value: "0 18-18 * * *" was expected every hour, told missed 23
times a day. Such a range is handed to croniter as its one value. And a weekday with a step from
a day ("1/2") runs to Sunday as 7 in cron and cronsim ("1-7/2": Monday, Wednesday, Friday,
Sunday), where croniter stopped at Saturday: it is handed to croniter so ("7/3" is then Sunday).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Protocol

from croniter import CroniterBadDateError, croniter


class Ticks(Protocol):
    def get_next(self, ret_type: type[datetime]) -> datetime: ...


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {name: i for i, name in enumerate(_MONTHS, 1)},
    {name: i for i, name in enumerate(_WEEKDAYS)},
)


def _value(field: int, text: str) -> int | None:
    """A field's value as written: a number, or a month's or a weekday's name (7 and 0 stay apart:
    "0-7" is every day)."""
    return int(text) if text.isdigit() else _NAMES[field].get(text.lower())


@lru_cache(maxsize=4096)
def _as_cron_reads(expr: str) -> str:
    """The expression with each range whose bounds are equal written as that one value."""
    fields = expr.split()
    if len(fields) != 5:
        return expr  # a macro
    read = []
    for i, field in enumerate(fields):
        parts = []
        for part in field.split(","):
            span, slash, step = part.partition("/")
            if i == 4 and slash and (start := _value(i, span)) is not None:
                span, part = f"{start}-7", f"{start}-7/{step}"  # cron's weekdays run to 7, croniter's "N/step" to 6
            low, dash, high = span.partition("-")
            parts.append(low if dash and _value(i, low) is not None and _value(i, low) == _value(i, high) else part)
        read.append(",".join(parts))
    return " ".join(read)


@lru_cache(maxsize=4096)
def _day_or(expr: str) -> bool:
    fields = expr.split()
    if len(fields) != 5:
        return True  # a macro: no day fields
    return not any(field.startswith("*") or field == "?" for field in (fields[2], fields[4]))  # "?": no day set


@lru_cache(maxsize=4096)
def _either_day(expr: str) -> tuple[str, str] | None:
    """The expression with one day field each (the other "*"), when both are restricted and one
    holds what croniter does not OR: "#" or "L" in the day of week, "W" in the day of month."""
    fields = expr.split()
    dow = fields[4].upper() if len(fields) == 5 else ""  # no weekday's name holds an "L"
    if len(fields) != 5 or not _day_or(expr) or not ("#" in dow or "L" in dow or "W" in fields[2].upper()):
        return None
    minute, hour, dom, month, dow = fields
    return f"{minute} {hour} {dom} {month} *", f"{minute} {hour} * {month} {dow}"


class _EitherDay:
    """The ticks of two expressions merged, in order, a tick both give once. One that has no next
    tick (the 31st in February) adds none; only both without one raise, as croniter would."""

    def __init__(self, exprs: tuple[str, str], start: datetime) -> None:
        self._sides = [croniter(expr, start, day_or=False) for expr in exprs]
        self._ahead: list[datetime | None] = [self._step(side) for side in self._sides]

    @staticmethod
    def _step(side: croniter) -> datetime | None:
        try:
            wall: datetime = side.get_next(datetime)
        except CroniterBadDateError:
            return None
        return wall

    def get_next(self, ret_type: type[datetime]) -> datetime:
        found = [wall for wall in self._ahead if wall is not None]
        if not found:
            raise CroniterBadDateError("failed to find next date")
        wall = min(found)
        self._ahead = [
            self._step(side) if ahead == wall else ahead for side, ahead in zip(self._sides, self._ahead, strict=True)
        ]
        return wall


def ticks(expr: str, start: datetime) -> Ticks:
    """croniter's ticks of `expr` after the naive wall time `start`, days matched as cron matches them."""
    expr = _as_cron_reads(expr)
    either = _either_day(expr)
    if either is not None:
        return _EitherDay(either, start)
    return croniter(expr, start, day_or=_day_or(expr))
