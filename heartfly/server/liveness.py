"""The deadline timer's last wake-up, and how long it has been silent since.

The wake-up is shown by the wall clock (/metrics' heartfly_timer_alive_timestamp_seconds); the
silence is measured by the monotonic clock. Measured by the wall clock, a step of it of more than
TIMER_STALE (NTP setting a clock that was wrong at boot, a VM's clock corrected) counted as a
timer that had stopped: /readyz failed, the heartbeat was held back, and a cluster's leader whose
lease renewal came then gave its lease up to another node for nothing.
"""

from __future__ import annotations

from heartfly.core.clock import Clock

TIMER_STALE = 5.0  # seconds without a timer wake-up before the server counts as unhealthy (readyz, watchdog)


class TimerMark:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.at = 0.0  # the last wake-up, by the wall clock
        self.asleep = False  # waiting for its next wake-up (TIMER_BEAT at most), not stuck in a turn
        self._since = clock.monotonic() - clock.now()  # (never marked: silent since the epoch, as before)

    def mark(self, at: float) -> None:
        """The timer woke at `at` (wall clock; a moment ago, or now)."""
        self.at = at
        self._since = self._clock.monotonic() - (self._clock.now() - at)

    def silent(self) -> float:
        """Seconds since the last wake-up, whatever the wall clock did meanwhile."""
        return self._clock.monotonic() - self._since

    def stale(self) -> float | None:
        """Those seconds, if more than TIMER_STALE, else None."""
        silent = self.silent()
        return silent if silent > TIMER_STALE else None

    def stuck(self) -> float | None:
        """stale(), unless the timer is asleep: then it wakes as soon as the event loop runs, and
        its silence was the whole process's (frozen: SIGSTOP, a paused VM), not a timer that stopped
        turning. A cluster's leader gives its lease up for a stuck one only: thawed within its
        lease, its keeper may run before its timer, and gave it up for a freeze the timer judges
        (clockwatch.watch_thaw), another node judging those deadlines at once."""
        return None if self.asleep else self.stale()
