"""Where time comes from. Pure modules take `now` as an argument; the rest ask a Clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time as UTC unix seconds."""
        ...

    def suspended(self) -> float:
        """Seconds the machine has been suspended (asleep) since it booted: a clock set forward
        does not move it, so a suspend is told apart from a step that a later one may correct."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that a step of the wall clock does not move: how long
        something has taken, whatever NTP did meanwhile."""
        ...


# Seconds the machine may have slept between two looks at the clock before that time counts as a
# downtime (slept): the deadlines in it are extended by it, and the pending alerts' expiry too.
SLEPT_MIN = 1.0

_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)  # Linux's: it counts a suspend, CLOCK_MONOTONIC does not


class SystemClock:
    def now(self) -> float:
        return time.time()

    def suspended(self) -> float:
        return 0.0 if _BOOTTIME is None else time.clock_gettime(_BOOTTIME) - time.monotonic()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.t = start
        self.asleep = 0.0
        self.stepped = 0.0  # the wall clock's steps, which the monotonic clock does not follow

    def now(self) -> float:
        return self.t

    def suspended(self) -> float:
        return self.asleep

    def monotonic(self) -> float:
        # As Linux's CLOCK_MONOTONIC (SystemClock's): it follows neither a step nor a suspend.
        return self.t - self.stepped - self.asleep

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t

    def suspend(self, seconds: float) -> float:
        """The machine sleeps for `seconds`."""
        self.asleep += seconds
        return self.advance(seconds)

    def step(self, seconds: float) -> float:
        """The wall clock is set forward (or back): NTP at boot, a VM's clock corrected."""
        self.stepped += seconds
        return self.advance(seconds)
