"""Where time comes from. Pure modules take `now` as an argument; the rest ask a Clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time as UTC unix seconds (the system's never goes back: SystemClock)."""
        ...

    def suspended(self) -> float:
        """Seconds the machine has been suspended (asleep) since it booted: a clock set forward
        does not move it, so a suspend is told apart from a step that a later one may correct."""
        ...


_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)  # Linux's: it counts a suspend, CLOCK_MONOTONIC does not


CATCH_UP = 0.5  # after the system clock is set back, the server's goes on at this pace until it catches up


class SystemClock:
    """The system's wall clock, except that it never goes back.

    Set back by S seconds (an NTP step, a hand correction), the system clock would date the pings
    after the step before those just ahead of it: a live failure would read as older than the
    success before it (history: no alert), an end as before its run's start. Instead this clock
    goes on at CATCH_UP pace, by the monotonic clock, until the system clock is ahead again (2 S
    later at half pace): pings keep the order they came in, and a run timed across the step comes
    out short, not negative. Set forward, it follows at once (that may be the correction of a wrong
    clock; a suspend is told apart by `suspended`). The clocks it reads are arguments for tests.
    """

    def __init__(self, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._last = -math.inf  # the latest time given
        self._then: float | None = None  # the monotonic time of that, while catching up

    def now(self) -> float:
        wall = self._wall()
        if wall >= self._last:  # every ping asks: kept to a comparison
            self._last = wall
            self._then = None
            return wall
        now = self._monotonic()
        if self._then is not None:
            self._last += CATCH_UP * max(0.0, now - self._then)
        self._then = now
        return self._last

    def suspended(self) -> float:
        return 0.0 if _BOOTTIME is None else time.clock_gettime(_BOOTTIME) - time.monotonic()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.t = start
        self.asleep = 0.0

    def now(self) -> float:
        return self.t

    def suspended(self) -> float:
        return self.asleep

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t

    def suspend(self, seconds: float) -> float:
        """The machine sleeps for `seconds`."""
        self.asleep += seconds
        return self.advance(seconds)
