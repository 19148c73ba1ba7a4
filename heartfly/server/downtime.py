"""A restart's own downtime: the deadlines that fell in it are extended by it, and a downtime not
yet applied to every stored state (a start that died while reading them) is kept for the next."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from heartfly.core import states
from heartfly.core.states import Deadline
from heartfly.core.units import human_duration
from heartfly.server.checks import Check

log = logging.getLogger("heartfly.server.engine")  # the engine's log, as before the split


class Downtime:
    """A restart's own downtime, applied to each check as the load schedules it: the deadline it
    is shown (the check's next) is computed once for both, not twice for 100k checks, and no
    check's is kept beyond that (100k kept for a second pass held 17 MiB more after the load).
    `settle_until`: what a deadline inside it or just after it is moved to at least (0: none)."""

    def __init__(
        self, stopped_at: float, unserved: float, settle_until: float = 0.0, earlier: Sequence[Pending] = ()
    ) -> None:
        self.stopped_at, self.unserved, self.settle_until = stopped_at, unserved, settle_until
        self.earlier = tuple(earlier)  # downtimes of starts that died before every state was read
        self.extended = 0

    def own(self) -> Pending:
        return self.stopped_at, self.unserved, self.settle_until

    def __call__(self, check: Check, deadline: Deadline | None) -> bool:
        """Extend the check's deadline if it fell inside or just after (an earlier downtime first:
        a state extended by it already is not extended twice, see states.extend_by_downtime);
        True if its state moved."""
        moved = stale = reset = False
        if check.state.downtime_to > self.unserved:
            # The mark of an extension dated after this start: the clock was set back since (after
            # a suspend's, or a restart's). Kept, it would make this downtime begin after its end.
            check.state = check.state.copy()
            check.state.downtime_to = 0.0
            reset = True
        for stopped_at, unserved, settle_until in (*self.earlier, self.own()):
            if stale:  # moved by the one before
                deadline = states.next_deadline(check.config, check.state)
            new = states.extend_by_downtime(check.state, deadline, stopped_at, unserved, settle_until)
            stale = new is not check.state
            if stale:
                check.state, moved = new, True
        self.extended += moved
        return moved or reset


Pending = tuple[float, float, float]  # a downtime's (stopped_at, unserved, settle_until)
UNREAD_DOWNTIMES = "unread_downtimes"  # meta: [Pending, ...] of starts whose states were not all read


def pending_downtimes(meta: dict[str, str]) -> list[Pending]:
    """The downtimes not yet applied to every state: those of starts that died while reading them."""
    text = meta.get(UNREAD_DOWNTIMES) or "[]"
    try:
        return [(float(a), float(b), float(c)) for a, b, c in json.loads(text)]
    except (ValueError, TypeError) as exc:
        log.error("the stored %s cannot be read (%s): %.200r; ignored", UNREAD_DOWNTIMES, exc, text)
        return []


def log_downtime(log: logging.Logger, downtime: Downtime, now: float, clean: bool, led: bool) -> None:
    """The restart's line about its downtime, once every state has it (Loading._loaded)."""
    stopped_at, unserved = downtime.stopped_at, downtime.unserved
    settle = ""
    if downtime.settle_until:
        after = human_duration(downtime.settle_until - now)
        settle = f" (or to {after} after this start, for pings sent meanwhile that are still being retried)"
    if not led:
        log.info(
            "Heartfly was not running for %s (%s stop); %d deadline(s) that fell in that time were extended by it%s",
            human_duration(now - stopped_at),
            "clean" if clean else "unclean",
            downtime.extended,
            settle,
        )
    else:
        # Not clean: no clean stop recorded, which a leader that lost its lease (PostgreSQL out of
        # reach, a freeze) does not record either: it did not stop (heartfly status says the same).
        log.info(
            "no node led for %s (the last leader's %s); pings were taken for %s of it, and %d deadline(s)"
            " in the rest were extended by it%s",
            human_duration(now - stopped_at),
            "clean stop" if clean else "crash or kill, or its lease lost: PostgreSQL unreachable, a pause",
            human_duration(now - unserved),
            downtime.extended,
            settle,
        )
