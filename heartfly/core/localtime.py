"""Times for people, in the operator's zone (`[server] display_timezone`, or a browser's own):
the dashboard, `heartfly status/history` and alert texts. APIs and logs keep UTC.

In UTC a time reads "2026-11-23 06:20:01Z", as it always has; in another zone the zone's
abbreviation follows: "2026-11-23 07:20:01 CET".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=64)
def zone(name: str | None) -> tzinfo:
    """The zone of an IANA name; UTC for None, "UTC" or a name this system does not know (a
    config's name is checked when it is read; a browser's may be anything)."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")


def known(name: str) -> bool:
    """Whether `name` is an IANA zone this system has (a browser's cookie may hold anything)."""
    return name == "UTC" or (len(name) <= 64 and _NAME.fullmatch(name) is not None and zone(name) is not UTC)


def full(ts: float | None, tz: tzinfo = UTC, *, empty: str = "—") -> str:
    """ "2026-11-23 07:20:01 CET" ("...Z" in UTC)."""
    if ts is None:
        return empty
    when = datetime.fromtimestamp(ts, tz)
    if tz is UTC:
        return when.strftime("%Y-%m-%d %H:%M:%SZ")
    return when.strftime("%Y-%m-%d %H:%M:%S ") + (when.tzname() or "")


def api_time(text: str, tz: tzinfo = UTC) -> str:
    """An API time ("2026-11-23T06:20:01Z") as `full` shows it, in `tz`: `heartfly status` and
    `pause` print the same end of a pause alike."""
    return full(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp(), tz)


def stamp(ts: float | None, now: float, tz: tzinfo = UTC) -> str:
    """A log line's time: "06:30:37" today, "Nov 22 06:30:37" before, with the year if not this one.
    In the hour a clock turned back, which reads twice, with the zone's abbreviation ("01:20:00 EST"):
    else two pings an hour apart read the same, and the log's order looks wrong."""
    if ts is None:
        return "—"
    when, today = datetime.fromtimestamp(ts, tz), datetime.fromtimestamp(now, tz)
    if when.date() == today.date():
        shown = when.strftime("%H:%M:%S")
    else:
        shown = when.strftime("%b %d %H:%M:%S" if when.year == today.year else "%Y-%m-%d %H:%M:%S")
    return f"{shown} {when.tzname()}" if _repeated(when) else shown


def _repeated(when: datetime) -> bool:
    """Whether this wall time happens twice (the other `fold` has another offset)."""
    return when.replace(fold=1 - when.fold).utcoffset() != when.utcoffset()


def name_of(tz: tzinfo) -> str:
    """The zone's name as a page says it: "UTC", "Europe/Berlin"."""
    return getattr(tz, "key", None) or "UTC"
