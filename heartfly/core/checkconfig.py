"""A check as the config describes it (CheckConfig), and the quick reader of a check of the common
shape (common_check), which config.py tries before its full reader."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from heartfly.core.addresses import parse_key
from heartfly.core.assertions import Assertion
from heartfly.core.config_values import AT_LEAST_1S, INHERITED, parse_cron, strings, tags_of
from heartfly.core.patterns import NAME_RE

Origin = Literal["file", "api", "auto"]  # where a check is defined: the operator's file or the database


class CheckConfig(NamedTuple):
    """One check as the file (or the API) describes it. A NamedTuple, not a frozen dataclass: as
    immutable, and built in a fifth of the time (a frozen dataclass sets each of its 24 fields
    through object.__setattr__), which is half a second of a start with 100,000 checks."""

    name: str
    key: str
    every: float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    grace: float = 300.0
    max_runtime: float | None = None
    min_runtime: float | None = None
    description: str = ""
    start_key: str | None = None
    fail_key: str | None = None
    channels: tuple[str, ...] = ()
    repeat: float | None = None  # remind every `repeat` while down
    stall: float | None = None  # during a run: no progress/log ping for this long -> down (stalled)
    after: str | None = None  # a pipeline step: the upstream check's name...
    after_trigger: str = "start"  # ...and which of its events starts this step's clock
    within: float | None = None  # ...and how soon after it this step must succeed
    expect: int | None = None  # fan-in: successes sharing a run id that make one complete run
    members: tuple[str, ...] = ()  # fan-in: the workers expected (named with member=)
    assertions: tuple[Assertion, ...] = ()
    failures_before_alert: int = 1
    tags: tuple[str, ...] = ()  # labels to pick checks by (maintenance windows)
    origin: Origin = "file"  # "api": made through the Management API, "auto": by a ping with ?create=1
    resume_on_ping: bool = False  # a start, success or failure ping ends a pause (Healthchecks' manual_resume off)

    def graced(self) -> bool:
        """Whether `grace` judges anything: a schedule's due time, or a fan-in's batch without
        max_runtime. A pipeline step is due by `within` alone, told step_missed at its end."""
        return self.after is None or (self.expect is not None and self.max_runtime is None)

    def schedule_words(self) -> str:
        from heartfly.core.units import human_duration

        if self.after is not None:
            assert self.within is not None
            return f"within {human_duration(self.within)} of {self.after}'s {self.after_trigger}"
        if self.cron is not None:
            return f'cron "{self.cron}" ({self.timezone})'
        assert self.every is not None
        one = {86400.0: "day", 3600.0: "hour", 60.0: "minute", 1.0: "second"}.get(self.every)
        return f"every {one or human_duration(self.every)}"  # "every hour", not "every 1 h"


# The keys a check of the common shape may hold, each with its TOML type and reader. "after",
# "within", "expect", "members" and "assert" (which depend on one another) are left to the full reader.
COMMON: dict[str, tuple[type, Callable[[Any], Any]]] = {
    **INHERITED,
    "key": (str, parse_key),
    "start_key": (str, parse_key),
    "fail_key": (str, parse_key),
    "every": (str, AT_LEAST_1S),
    "cron": (str, parse_cron),
    "description": (str, str),
    "channels": (list, strings),
    "tags": (list, tags_of),
}


def common_check(name: str, raw: Any, defaults: Mapping[str, Any]) -> CheckConfig | None:
    """A check of the common shape, read without the full reader's bookkeeping (a 100,000-check
    file is mostly these; the full reader costs several times more per check). None for anything
    unusual or wrong: the full reader then reads it again and words every problem."""
    if type(raw) is not dict or "key" not in raw or not NAME_RE.fullmatch(name):
        return None
    read: dict[str, Any] = {}
    for key, value in raw.items():
        spec = COMMON.get(key)
        if spec is None or type(value) is not spec[0]:  # `is`, not isinstance: true is not an integer
            return None
        try:
            read[key] = spec[1](value)
        except ValueError:  # UnitError too
            return None
    if ("every" in read) == ("cron" in read) or ("timezone" in read and "cron" not in read):
        return None
    inherited = ({**defaults, **read} if defaults else read).get  # [defaults] holds only what a check inherits
    max_rt, min_rt, grace = inherited("max_runtime"), inherited("min_runtime"), inherited("grace")
    if max_rt is not None and min_rt is not None and min_rt >= max_rt:
        return None
    # Every field, by position: 1.2 µs against 2.9 by keyword (matched by name, one by one), a
    # sixth of a second at 100k checks. tests/test_config_common.py holds it to the full reader's.
    return CheckConfig(
        _own(name),  # name
        read["key"],  # key
        read.get("every"),  # every
        read.get("cron"),  # cron
        inherited("timezone") or "UTC",  # timezone
        300.0 if grace is None else grace,  # grace
        max_rt,  # max_runtime
        min_rt,  # min_runtime
        read.get("description") or "",  # description
        read.get("start_key"),  # start_key
        read.get("fail_key"),  # fail_key
        inherited("channels") or (),  # channels
        inherited("repeat"),  # repeat
        inherited("stall"),  # stall
        None,  # after
        "start",  # after_trigger
        None,  # within
        None,  # expect
        (),  # members
        (),  # assertions
        inherited("failures_before_alert") or 1,  # failures_before_alert
        read.get("tags") or (),  # tags
        "file",  # origin
    )


def key_uuid(key: str) -> str | None:
    """`key` as a canonical uuid, if it is one written in the usual 8-4-4-4-12 form (in either
    case): uuid.UUID also takes the 32 digits with the four hyphens anywhere ("0123456789ab-cdef-
    ..."), which made two keys of one UUID's digits one check's uuid."""
    if len(key) != 36:
        return None
    try:
        canonical = str(uuid.UUID(key))
    except ValueError:
        return None
    return canonical if canonical == key.lower() else None


def _own(name: str) -> str:
    """A copy of a check's name, not the TOML parser's: the parser's sits among its document's short
    strings (every table's keys and values), which die once the config is read, and a name kept
    alive for each check would keep their memory held (19 MiB of 240 at 100k checks, measured
    with sys._debugmallocstats). The config's map of checks is keyed by this copy too."""
    return name.encode().decode()
