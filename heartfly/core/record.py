"""A check's record over a window (24 h, 7 d, 30 d): how much of the watched time it was down, how
often it went down, how many runs failed, and how long runs took: the figures an operator pastes
into a post-mortem. Pure: the flips and runs come in, time is an argument.

Watched time is the window's, less the part before the check existed and the time it was paused.
Late (within grace) counts as up; `new` (never pinged yet) too: nothing was missed yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

WINDOWS: tuple[tuple[str, float], ...] = (("24h", 86400.0), ("7d", 7 * 86400.0), ("30d", 30 * 86400.0))
LONGEST = max(seconds for _, seconds in WINDOWS)


class Change(NamedTuple):
    at: float
    old: str
    new: str


class RunSpan(NamedTuple):
    started_at: float
    ended_at: float
    outcome: str


class RecordRows(NamedTuple):
    """What the store reads for a record: the check's creation, its status before the window
    (None: no counted change before it), the changes in it, the runs that ended in it."""

    created_at: float
    before: str | None
    changes: list[Change]
    runs: list[RunSpan]


@dataclass(frozen=True, slots=True)
class Record:
    window: str
    watched: float  # seconds
    down: float  # seconds
    availability: float | None  # 0..1 of the watched time; None if nothing was watched
    times_down: int
    runs: int
    failed_runs: int
    median_duration: float | None
    p95_duration: float | None


def record(
    window: str,
    seconds: float,
    now: float,
    created_at: float,
    before: str | None,
    changes: Sequence[Change],
    runs: Sequence[RunSpan],
) -> Record:
    """The record of the `seconds` up to `now`. `before`: the status the last change before the
    window left (None: none, so `new`); `changes` in time order, any of them earlier than the
    window being skipped (their effect is in `before` only if the caller says so)."""
    start = max(now - seconds, created_at)
    status = before or "new"
    spent: dict[str, float] = {}
    at = start
    times_down = 0
    for change in changes:
        if change.at < start:
            status = change.new
            continue
        if change.at > now:
            break
        spent[status] = spent.get(status, 0.0) + change.at - at
        at = change.at
        if change.new == "down" and change.old != "down":
            times_down += 1
        status = change.new
    if now > at:
        spent[status] = spent.get(status, 0.0) + now - at
    watched = max(0.0, now - start - spent.get("paused", 0.0))
    down = spent.get("down", 0.0)
    finished = [r for r in runs if start <= r.ended_at <= now]
    durations = sorted(max(0.0, r.ended_at - r.started_at) for r in finished)
    return Record(
        window=window,
        watched=watched,
        down=down,
        availability=(1.0 - down / watched) if watched > 0 else None,
        times_down=times_down,
        runs=len(finished),
        failed_runs=sum(1 for r in finished if r.outcome != "success"),
        median_duration=_rank(durations, 50),
        p95_duration=_rank(durations, 95),
    )


def records(
    now: float, created_at: float, before: str | None, changes: Sequence[Change], runs: Sequence[RunSpan]
) -> list[Record]:
    """Every window of WINDOWS; `before` is the status before the longest one began."""
    return [record(name, seconds, now, created_at, before, changes, runs) for name, seconds in WINDOWS]


def _rank(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (a duration that happened, not one between two)."""
    if not values:
        return None
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]
