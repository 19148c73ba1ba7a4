"""Schedules, times and durations in words, for people reading the dashboard. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from heartfly.core.config import CheckConfig
from heartfly.core.localtime import full
from heartfly.core.units import human_duration, is_decimal

_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_DAY_NAMES = {d[:3].lower(): i for i, d in enumerate(_DAYS)}
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_NUM = re.compile(r"\d{1,2}")


def schedule_words(cfg: CheckConfig) -> str:
    """ "every day at 03:00 Europe/Berlin", "every 15 min", "within 1 h of etl-extract's start"."""
    if cfg.cron is None:
        return cfg.schedule_words()  # `after` and `every` read the same on every surface
    words = cron_words(cfg.cron)
    if words and ":" not in words:
        return words  # "every 15 minutes" needs no zone
    return f"{words} {cfg.timezone}" if words else f'cron "{cfg.cron}" ({cfg.timezone})'


def _day_list(field: str) -> str | None:
    days: list[int] = []
    for part in field.split(","):
        if "-" in part:
            lo, hi = (_day(p) for p in part.split("-", 1))
            if lo is None or hi is None or lo > hi:
                return None
            days.extend(range(lo, hi + 1))
        else:
            d = _day(part)
            if d is None:
                return None
            days.append(d)
    days = sorted({d % 7 for d in days})
    if days == [1, 2, 3, 4, 5]:
        return "every weekday"
    if days == [0, 6]:
        return "every weekend day"
    names = [_DAYS[d] for d in days]
    return "every " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def _day(text: str) -> int | None:
    if is_decimal(text) and int(text) <= 7:
        return int(text)
    return _DAY_NAMES.get(text.lower())


def cron_words(expr: str) -> str | None:
    """Common cron shapes in words; None for anything fancier (shown as the expression itself)."""
    expr = _MACROS.get(expr, expr)
    fields = expr.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if dom == "*" and month == "*" and dow == "*":
        minutes, hours = _step(minute, 60), _step(hour, 24)
        if minutes is not None and hour == "*":
            return "every minute" if minutes == 1 else f"every {minutes} minutes"
        if _NUM.fullmatch(minute) and hours == 1:
            return f"every hour at minute {int(minute)}"
        if _NUM.fullmatch(minute) and hours is not None:
            return f"every {hours} hours at minute {int(minute)}"
    if not (_NUM.fullmatch(minute) and _hours(hour)):
        return None
    at = _at(minute, hour)
    if month == "*" and dom == "*":
        if dow == "*":
            return f"every day at {at}"
        days = _day_list(dow)
        return f"{days} at {at}" if days else None
    if dow == "*" and _NUM.fullmatch(dom):
        if month == "*":
            return f"on day {int(dom)} of every month at {at}"
        if _NUM.fullmatch(month) and 1 <= int(month) <= 12:
            return f"every year on {_MONTHS[int(month) - 1]} {int(dom)} at {at}"
    return None


def _step(field: str, span: int) -> int | None:
    """N of "*/N" (or 1 of "*") where the runs are N apart all along: N divides the hour or the
    day. "*/45" is :00 and :45, 15 minutes apart across the hour, so it is said as the expression."""
    if field == "*":
        return 1
    if field.startswith("*/") and field[2:].isdigit() and 0 < int(field[2:]) < span and span % int(field[2:]) == 0:
        return int(field[2:])
    return None


def _hours(field: str) -> bool:
    return all(_NUM.fullmatch(h) for h in field.split(","))


def _at(minute: str, hour: str) -> str:
    return " and ".join(f"{int(h):02d}:{int(minute):02d}" for h in hour.split(","))


def relative(ts: float | None, now: float) -> str:
    """ "3 min ago", "in 2 h", "just now": the span in human_duration's words, to the second."""
    if ts is None:
        return "never"
    delta = ts - now
    span = abs(delta)
    if span < 10:
        return "just now" if delta <= 0 else "in a few seconds"
    text = human_duration(round(span))  # whole seconds: "12 s ago", not "12.3 s ago"
    return f"in {text}" if delta > 0 else f"{text} ago"


def percent(share: float) -> str:
    """ "99.99 %": a share to two decimals that never rounds to a whole it is not. A second down
    in half a day is 99.998 %, which plain rounding shows as 100.00 % beside the downtime."""
    shown = round(100 * share, 2)
    if 0 < share < 1:
        shown = min(max(shown, 0.01), 99.99)
    return f"{shown:.2f} %"


def utc(ts: float | None) -> str:
    """ "2026-11-23 06:20:01Z": for logs, which stay in UTC (pages: localtime)."""
    return full(ts)


def iso_z(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
