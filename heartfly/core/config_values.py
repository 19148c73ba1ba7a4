"""How one value of the config file is read: each reader takes the TOML value and returns it
converted, or raises ValueError with the words the user sees after the value's key path. The
readers shared with the client (keys, addresses) are heartfly.core.addresses'; the units
(durations, sizes) heartfly.core.units'.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

from heartfly.core.addresses import url_fault
from heartfly.core.config_reader import at_least, grace_duration, positive, positive_at_most, positive_duration
from heartfly.core.cronticks import ticks
from heartfly.core.maintenance import Mode
from heartfly.core.patterns import NAME_RE
from heartfly.core.record import LONGEST

_RANDOM_FIELD = re.compile(r"(?<![A-Za-z])R(?![A-Za-z])", re.IGNORECASE)  # croniter's "R", not "MAR"
TAG_RE = re.compile(r"\S{1,50}")
NODE_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
AT_LEAST_1S = at_least(1, "1s")  # every, within, stall: a tighter deadline would busy the timer
AT_LEAST_1M = at_least(60, "1m")  # repeat: reminders must not flood a channel
# keep_history: a check's record (core/record.py) reaches back 30 days; a shorter history would cut it.
KEEP_HISTORY_MIN = at_least(LONGEST, "30d")
Synchronous = Literal["normal", "full"]  # SQLite's PRAGMA synchronous, as the config may set it
BODY_HARD_CAP = 16 * 1024 * 1024  # past this a ping's body is refused (413), not just truncated


# keep_pings: a prune's OFFSET must fit the databases' 64-bit integers (a larger one failed every commit).
KEEP_PINGS_MAX = 1_000_000_000
keep_pings = positive_at_most(KEEP_PINGS_MAX, "pings kept per check")


def parse_heartbeat_url(text: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s#]*)?", text):
        raise ValueError('expected an http(s) URL like "https://hc-ping.com/<uuid>" (not shown: it may hold a key)')
    if url_fault(text) is not None:  # what the pattern lets through but no client can use: port 99999, "https://[::1/x"
        raise ValueError(
            "expected an http(s) URL with a host and a port from 1 to 65535 (not shown: it may hold a key)"
        )
    return text


def parse_window_name(text: str) -> str:
    if not NAME_RE.fullmatch(text):
        raise ValueError("a window's name uses letters, digits, '_', '.', '-' (at most 100, starting alnum)")
    return text


def parse_mode(text: str) -> Mode:
    if text not in ("hold", "drop"):
        raise ValueError(
            'expected "hold" (one summary when the window ends)'
            ' or "drop" (none, but the recovery of a down told before it)'
        )
    return cast(Mode, text)


def parse_node_id(text: str) -> str:
    if not NODE_ID_RE.fullmatch(text):
        raise ValueError("a node id is 1 to 64 letters, digits, '.', ':', '_' or '-'")
    return text


@functools.lru_cache(maxsize=4096)  # 100k checks share a few expressions; each check costs ~0.4 ms
def parse_cron(text: str) -> str:
    expr = " ".join(text.split())
    if expr.startswith("@"):
        expr = expr.lower()  # "@DAILY" is "@daily" (is_fixed_time knows the macros by lower-case name)
    fields = 1 if expr.startswith("@") else 5
    if _RANDOM_FIELD.search(expr):
        raise ValueError(f'"{text}" picks a random time (R); a schedule must be fixed')
    if len(expr.split(" ")) != fields or not croniter.is_valid(expr):
        raise ValueError(f'"{text}"{_unreadable(expr)} (minute hour day month weekday)')
    try:
        ticks(expr, datetime(2026, 1, 1)).get_next(datetime)
    except CroniterError:
        raise ValueError(f'"{text}" never fires (no such date)') from None
    return expr


_FIELDS = ("minute", "hour", "day", "month", "weekday")


def _unreadable(expr: str) -> str:
    """What is wrong with a cron expression croniter refuses: the first of its five fields that
    cannot be read alone ("0 6 * * 5L": cronsim's last Friday, not croniter's), or its shape."""
    fields = expr.split(" ")
    if len(fields) == len(_FIELDS):
        for i, field in enumerate(fields):
            alone = " ".join(field if j == i else "*" for j in range(len(_FIELDS)))
            if not croniter.is_valid(alone):
                return f': its {_FIELDS[i]} field "{field}" cannot be read'
    return " is not a five-field cron expression"


def parse_zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder of the database
        raise ValueError(f'unknown time zone "{text}" ({_zone_hint(text)})') from None
    return text


@functools.lru_cache(maxsize=64)  # 100k checks may share one misspelt zone: the database is listed once
def _zone_hint(text: str) -> str:
    """The zone meant by one in the wrong case ("europe/berlin"), without its region ("Berlin") or
    misspelt ("Europe/Berln"); else how zones are named."""
    # Not Etc/GMT+2 for "GMT+2" (its sign is POSIX's: two hours behind UTC), nor GMT+0 (nearly alike).
    zones = sorted(zone for zone in available_timezones() if not zone.startswith("Etc/"))
    by_case = {zone.lower(): zone for zone in zones}
    in_region = [zone for zone in zones if zone.lower().endswith("/" + text.lower())]
    close = [] if re.search(r"[+-][0-9]", text) else difflib.get_close_matches(text, zones, n=1, cutoff=0.8)
    meant = by_case.get(text.lower()) or (in_region[0] if len(in_region) == 1 else None) or next(iter(close), None)
    return f'did you mean "{meant}"?' if meant else 'use an IANA name such as "Europe/Berlin"'


def parse_sync(text: str) -> Synchronous:
    if text.lower() not in ("normal", "full"):
        raise ValueError('expected "normal" or "full"')
    return cast(Synchronous, text.lower())


# How each key a check may inherit from [defaults] is read (channels: an array of strings).
INHERITED: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "grace": (str, grace_duration),
    "timezone": (str, parse_zone),
    "max_runtime": (str, positive_duration),
    "min_runtime": (str, positive_duration),
    "repeat": (str, AT_LEAST_1M),
    "stall": (str, AT_LEAST_1S),
    "failures_before_alert": (int, positive),
}


def strings(items: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(i, str) and i for i in items):
        raise ValueError("not an array of non-empty strings")
    return tuple(items)


def tags_of(items: list[Any]) -> tuple[str, ...]:
    tags = strings(items)
    if not all(TAG_RE.fullmatch(tag) for tag in tags):
        raise ValueError("not a tag")
    return tags
