"""Maintenance windows (`[[maintenance]]`): stretches of time, one-off or recurring, during which
the checks they cover send no alerts. States still change and are recorded and shown; only the
alerts are held (a single summary when the window ends, of what went down during it and is
still down) or dropped (nothing). Pure: time is an argument.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from heartfly.core.statetypes import CheckState, Status

if TYPE_CHECKING:  # config.py reads [[maintenance]] into Windows: it imports this module
    from heartfly.core.config import CheckConfig

Mode = Literal["hold", "drop"]
MAX_ENDED = 100  # occurrences summarized at once after a long stop; older ones are skipped


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    duration: float
    cron: str | None = None  # recurring: each occurrence starts at the cron's times...
    timezone: str = "UTC"  # ...read in this zone
    start: float | None = None  # one-off
    checks: tuple[str, ...] = ()  # names or shell patterns ("etl-*"); with no tags either: every check
    tags: tuple[str, ...] = ()
    alerts: Mode = "hold"

    def covers(self, check: CheckConfig) -> bool:
        if not self.checks and not self.tags:
            return True
        if any(fnmatch.fnmatchcase(check.name, pattern) for pattern in self.checks):
            return True
        return any(tag in check.tags for tag in self.tags)

    def starts_after(self, after: float) -> Iterable[float]:
        """The occurrences' starts after `after`, in order."""
        if self.start is not None:
            if self.start > after:
                yield self.start
            return
        from heartfly.core.schedule import next_cron_due  # schedule imports config, which imports this

        assert self.cron is not None
        while True:
            due = next_cron_due(self.cron, self.timezone, after)
            # A time the clocks skip (02:30 on the day they jump from 02:00 to 03:00): cron runs it
            # at the jump, `since`, and so does the maintenance it announces.
            yield due.since if after < due.since < due.at else due.at
            after = due.at

    def active(self, now: float) -> tuple[float, float] | None:
        """The occurrence under way at `now`: (start, end), or None."""
        for start in self.starts_after(now - self.duration):
            return (start, start + self.duration) if start <= now else None
        return None

    def shortest_gap(self, starts: int = 100) -> float | None:
        """The shortest time between two starts of a recurring window among its first `starts` from
        a fixed instant (2026-01-01, wall time: a cron's pattern repeats by the year), or None."""
        if self.cron is None:
            return None
        from heartfly.core.cronticks import ticks  # as starts_after's: only for check-config's advice

        walls = ticks(self.cron, datetime(2026, 1, 1))
        times = [walls.get_next(datetime) for _ in range(starts)]
        return min(((b - a).total_seconds() for a, b in itertools.pairwise(times)), default=None)

    def ended_between(self, since: float, now: float) -> list[tuple[float, float]]:
        """The occurrences that ended in (since, now], oldest first (at most MAX_ENDED, the newest)."""
        ended: list[tuple[float, float]] = []
        for start in self.starts_after(since - self.duration):
            if start + self.duration > now:
                break
            ended.append((start, start + self.duration))
            if len(ended) > MAX_ENDED:
                ended.pop(0)
        return ended


def silencing(windows: Sequence[Window], check: CheckConfig, now: float) -> Window | None:
    """The window (the first in the file) that silences `check`'s alerts at `now`, if any."""
    for window in windows:
        if window.covers(check) and window.active(now) is not None:
            return window
    return None


@dataclass(frozen=True, slots=True)
class StillDown:
    check: str
    reason: str | None
    since: float
    channels: tuple[str, ...]


def still_down(window: Window, end: float, checks: Iterable[tuple[CheckConfig, CheckState]]) -> list[StillDown]:
    """What a held window's summary at the `end` of an occurrence tells: the checks whose down
    alert it holds (held in that occurrence, or an earlier one a crash left untold) and that are
    down still. One that went down before it was alerted then; one that recovered within it has
    nothing left to say; one it stopped covering (a reload) was told then (release_holds)."""
    return [
        StillDown(cfg.name, st.reason.value if st.reason else None, st.changed_at, cfg.channels)
        for cfg, st in checks
        if st.window_hold == window.name and st.window_end <= end and st.status is Status.DOWN
    ]
