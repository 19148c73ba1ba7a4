"""The engine's part that watches for time in which no ping could reach it, though its deadlines
passed: the machine slept (a suspend: a downtime, whose deadlines are extended by it), or the
process was frozen (SIGSTOP, a paused VM or container: nothing is extended, but the deadlines that
fell due meanwhile are judged once the pings that waited at its door, in its sockets, are in)."""

from __future__ import annotations

import logging
import math

from heartfly.core import states
from heartfly.core.clock import SLEPT_MIN
from heartfly.core.states import DeadlineKind
from heartfly.core.units import human_duration
from heartfly.server.downtime import Downtime
from heartfly.server.liveness import TIMER_STALE, TimerMark
from heartfly.server.steps import Steps
from heartfly.store import rows as store

log = logging.getLogger("heartfly.server.engine")  # the engine's log, as before the split

TIMER_BEAT = 1.0  # the timer task wakes at least this often, to show it is alive


class ClockWatch(Steps):
    timer_alive: TimerMark
    _beat: float | None
    # The end of the last thaw's settle: a deadline it moved there is not moved again by the next
    # (a loop stalled again and again by its load, not frozen, would otherwise put it off for ever).
    _settled_until = 0.0
    _thawed_mark = 0.0  # the timer's alive mark (TimerMark.at) whose silence watch_thaw last saw
    _walls: tuple[float, float] | None = None  # the wall and the monotonic clock at the last look

    def watch_clock(self, now: float) -> None:
        """At each timer wake-up, and at a ping when the timer has not woken for a while (the first
        after a resume may come before it): if the machine slept since the last look, no ping could
        come in meanwhile, and that time is a downtime, as a restart's (slept). A clock set
        forward is not one: it may be the correction of a wrong step, and extending by it would
        leave the checks silent for as long."""
        suspended = self.clock.suspended()
        last, self._beat = self._beat, suspended
        if last is not None and suspended - last > SLEPT_MIN:
            self.slept(now, suspended - last)
        self._watch_step_back()

    def _watch_step_back(self) -> None:
        """A wall clock set back (NTP stepping one that ran ahead; a VM's corrected) since the last
        look, by the monotonic clock, which a step does not move (nor a suspend: the wall clock's
        lead then is time asleep, not a step). While it lasts, pings without ts are dated before
        those taken just before it: a failure is history, no alert (README). Said, as it is not.
        Both clocks read here, together (a ping's `now` may have been read a while before)."""
        now, monotonic = self.clock.now(), self.clock.monotonic()
        last, self._walls = self._walls, (now, monotonic)
        if last is None:
            return
        back = (monotonic - last[1]) - (now - last[0])
        if back > SLEPT_MIN:
            log.warning(
                "the system clock was set back by %s: for as long, the pings without ts of a check pinged"
                " before the step are dated before its last ones, so a failure is stored but alerts"
                " nobody, and an end may leave its run open (keep the clock from being set back: README)",
                human_duration(back),
            )

    def _watch_clock_if_timer_late(self, now: float) -> None:
        """At a ping: watch_clock and watch_thaw, if the timer has not woken for a while (after a
        resume, say, or a thaw: the loop may read a ping that waited before the timer wakes)."""
        if now - self.timer_alive.at > TIMER_BEAT + 1.0:
            self.watch_clock(now)
            self.watch_thaw(now)

    def slept(self, now: float, asleep: float) -> None:
        """The deadlines that fell in the `asleep` seconds before `now` are extended by them; a real
        miss is told once they have passed. By the time asleep, not the wall clock's move since the
        last look (a step, or a long time awake, in it would count too), and with no settle after
        it: suspends one after another must not push a deadline on for ever. Stored at once, with
        an alive mark: a crash soon after would otherwise leave the next start the deadlines
        unextended, or count the sleep again."""
        downtime = Downtime(now - asleep, now)
        for check in self.checks.values():
            if not check.loaded:
                continue
            before = check.state
            at = self._fire_at(check, downtime)  # applies it
            if check.state is not before:
                self.writer.submit_nowait(store.Write(state=self._mark_stored(check)))
                self._schedule(check, at)
        # Listed with the restarts' downtimes (heartfly status, the API): the alerts it extended say so.
        suspend = store.downtime_statement(now - asleep, now, True, suspended=True)
        self.writer.submit_nowait(store.Write(statements=[suspend, store.alive_statement(now)]))
        log.warning(
            "this machine was suspended for %s; %d deadline(s) that fell in that time were extended by it",
            human_duration(asleep),
            downtime.extended,
        )

    def watch_thaw(self, now: float) -> None:
        """At each timer wake-up, before it marks itself alive, and at a ping the loop read before
        it (once a silence). A timer silent for longer than TIMER_STALE, by the monotonic clock, was
        frozen with its process (SIGSTOP; a VM paused; a suspend stops that clock, and a step of
        the wall clock does not move it): the pings sent meanwhile wait in its sockets, the
        clients' retries follow, and the spools' replays. Judged at once (by the timer, or by the
        first of those pings to arrive, a retry dated after it), the deadlines they met were told
        missed, and recovered by them a moment later. Those that fell in the freeze move to the
        reorder window's end, as a restart's settle moves those just after it, but are not
        extended by the freeze: a floor (not_before, as a reload's), not a slack, which would take
        the rest along (a late one's grace: its miss told that much later, and one after the
        freeze put off by it). And once only: a stall that follows moves none the one before it
        did (a busy loop's, again and again, must not silence them)."""
        silent = self.timer_alive.silent()
        if not self.timer_alive.at or silent <= TIMER_STALE or self.timer_alive.at == self._thawed_mark:
            return
        self._thawed_mark = self.timer_alive.at  # this silence seen: by a ping first, not again by the timer
        frozen_at = max(now - silent, math.nextafter(self._settled_until, math.inf))
        settle_until = self._settled_until = now + states.REORDER_WINDOW
        moved = 0
        for check in self.checks.values():
            if not check.loaded:
                continue
            try:
                deadline = states.next_deadline(check.config, check.state)
            except Exception:
                log.exception("check %s: cannot compute its deadline (the timer tries again)", check.name)
                continue
            if deadline is None or deadline.kind is DeadlineKind.REMIND or not frozen_at <= deadline.at < settle_until:
                continue
            check.state = check.state.copy()
            check.state.not_before = settle_until
            moved += 1
            self.writer.submit_nowait(store.Write(state=self._mark_stored(check)))
            self._schedule(check, self._fire_at(check, None))
        log.warning(
            "the deadline timer did not run for %s (this process was stopped or too busy, or its machine"
            " frozen); %d deadline(s) that fell due meanwhile are judged in %s, after the pings that waited",
            human_duration(silent),
            moved,
            human_duration(states.REORDER_WINDOW),
        )
