"""Where time comes from. Pure modules take `now` as an argument; the rest ask a Clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time as UTC unix seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds this process has run for, on a clock no step moves (and that a suspend stops)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.t = start
        self.m = 0.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.m

    def advance(self, seconds: float) -> float:
        self.t += seconds
        self.m += seconds
        return self.t

    def step(self, seconds: float) -> float:
        """The wall clock alone moves: a suspend, or a clock set forward (back, if negative)."""
        self.t += seconds
        return self.t
