"""The ends of held maintenance windows: one summary per channel of what went down during the
window and is down still. The last end handled is kept in the meta table (`maintenance_done:`),
so a window that ended while Heartfly was stopped is summarized at the next start.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping

from heartfly.core import maintenance
from heartfly.core.config import Config
from heartfly.core.statetypes import CheckState, Status
from heartfly.notify import outbox
from heartfly.server.checks import Check
from heartfly.store import rows as store

log = logging.getLogger(__name__)

DONE_META = "maintenance_done:"
HOLDS_META = "maintenance_holds_kept"  # set once a start has given holds to states stored without them


def marks(config: Config, stored: Mapping[str, str], now: float) -> tuple[dict[str, float], list[store.Statement]]:
    """Each window's last handled moment: stored, else now (a new window owes no summary of the
    past), and the statements that store the new ones."""
    done: dict[str, float] = {}
    new: list[store.Statement] = []
    for window in config.maintenance:
        try:
            done[window.name] = float(stored[DONE_META + window.name])
        except (KeyError, ValueError):
            done[window.name] = now
            new.append(store.meta_statement(DONE_META + window.name, repr(now)))
    return done, new


def close(
    config: Config, checks: Mapping[str, Check], done: dict[str, float], now: float, next_outbox_id: int
) -> tuple[store.Write | None, int, list[Check]]:
    """The summaries of the windows that ended since they were last looked at (and their marks),
    or None if none ended (and no mark moved back with the clock); the next free outbox id; and the
    checks whose holds these ends closed, whose states must say so (engine.close_windows): those
    told, and those held but not down at the end (paused: nothing left to say, as at a release)."""
    write = store.Write()
    told: list[Check] = []
    for window in config.maintenance:
        since = done.get(window.name, now)
        if now < since:
            # The clock was set back: the mark follows it (stored: a restart reads it), or an
            # occurrence under way again that ends before it would never be summarized.
            done[window.name] = now
            write.statements.append(store.meta_statement(DONE_META + window.name, repr(now)))
            continue
        if now == since:
            continue
        done[window.name] = now
        ended = window.ended_between(since, now)
        if not ended:
            continue
        write.statements.append(store.meta_statement(DONE_META + window.name, repr(now)))
        if window.alerts == "drop":  # it holds nothing (a hold it had as a `hold` window was told by release)
            log.info("maintenance window %s ended; its alerts were dropped", window.name)
            continue
        held = [c for c in checks.values() if c.state.window_hold == window.name]
        for start, end in ended:
            down = maintenance.still_down(window, end, ((c.config, c.state) for c in held))
            names = {d.check for d in down}
            # Told once, not again at a later end. One held but not down at this end (paused in the
            # window: no change that alerts clears a hold) has nothing left to say: a hold kept would
            # hold its reminders and recovery for a summary that will never tell it.
            void = {c.config.name for c in held if c.state.window_end <= end and c.state.status is not Status.DOWN}
            told += [c for c in held if c.config.name in names or c.config.name in void]
            held = [c for c in held if c.config.name not in names and c.config.name not in void]
            log.info("maintenance window %s ended; %d check(s) still down%s", window.name, len(down),
                     ": " + ", ".join(d.check for d in down) if down else "")  # fmt: skip
            next_outbox_id = _summaries(config, window.name, (start, end), down, now, next_outbox_id, write)
    return (write if write.statements else None), next_outbox_id, told


def with_hold_of(old: CheckState, new: CheckState) -> CheckState:
    """`new`, a state the state machine made from a state before `old`, with `old`'s window hold,
    the channels told it is down, what took it down and, paused, when that down began (which only
    the engine sets, on the state a change leaves: changes._note_hold, _note_told, _note_paused_down)."""
    kept = (old.window_hold, old.window_end, old.down_told_to, old.down_detail, old.paused_down_since)
    if (new.window_hold, new.window_end, new.down_told_to, new.down_detail, new.paused_down_since) == kept:
        return new
    return dataclasses.replace(
        new, window_hold=old.window_hold, window_end=old.window_end, down_told_to=old.down_told_to,
        down_detail=old.down_detail, paused_down_since=old.paused_down_since,
    )  # fmt: skip


Hold = tuple[Check, str | None, float]  # a check, and the window hold its state is to have: None for none


def release(
    config: Config, checks: Iterable[Check], done: Mapping[str, float], now: float, next_outbox_id: int, *,
    adopt: bool = False,
) -> tuple[store.Write | None, int, list[Hold]]:  # fmt: skip
    """The down alerts held for windows that will not tell them: a window removed or changed by a
    reload (or while Heartfly was stopped), or one that no longer covers the check. Told now, as
    that window's summary (ended "now"). A hold whose occurrence ended is left to close() if the
    window's next summary (its done mark behind that end) will tell it.

    Returns their write (None if none), the next free outbox id, and the holds the states must
    take: none for those told or void (the check is not down), a new end for an occurrence under
    way made longer or shorter. With `adopt` (the first start of a version that keeps holds): a
    check down since a time a `hold` window silenced it, whose summary has not been sent, and that
    has no hold (its state stored by a version before), takes that hold.
    """
    windows = {w.name: w for w in config.maintenance if w.alerts == "hold"}
    under_way: dict[str, tuple[float, float] | None] = {}  # per window, at `now`: a cron walk each
    last_end: dict[str, float] = {}  # per window: the end of the last occurrence close() will summarize
    for w in windows.values():
        under_way[w.name] = w.active(now)
        ended = w.ended_between(done[w.name], now) if w.name in done else []
        last_end[w.name] = ended[-1][1] if ended else -math.inf
    orphans: dict[str, list[Check]] = {}
    holds: list[Hold] = []
    for check in checks:
        st = check.state
        held_by = st.window_hold
        if held_by is None:
            if adopt and st.status is Status.DOWN and not st.folded:  # as _silenced would have held it
                silenced = maintenance.silencing(config.maintenance, check.config, st.changed_at)
                if silenced is not None and silenced.alerts == "hold":
                    occurrence = silenced.active(st.changed_at)
                    if occurrence is not None and occurrence[1] > done.get(silenced.name, now):
                        holds.append((check, silenced.name, occurrence[1]))
            continue
        name = held_by
        window = windows.get(name)
        occurrence = under_way[name] if window is not None and window.covers(check.config) else None
        if st.status is not Status.DOWN:
            holds.append((check, None, 0.0))
        elif occurrence is not None and st.window_end > occurrence[0]:  # the same occurrence
            if occurrence[1] != st.window_end:
                holds.append((check, name, occurrence[1]))
        elif last_end.get(name, -math.inf) >= st.window_end:
            pass  # its occurrence ended: close() tells it with that occurrence's summary, next round
        else:
            orphans.setdefault(name, []).append(check)
    write = store.Write()
    for name, held in orphans.items():
        down = [
            maintenance.StillDown(c.config.name, c.state.reason.value if c.state.reason else None,
                                  c.state.changed_at, c.config.channels)
            for c in held
        ]  # fmt: skip
        names = ", ".join(d.check for d in down)
        log.warning("maintenance window %s was removed or changed, or no longer covers %d check(s) whose"
                    " down alert it held: telling it now: %s", name, len(held), names)  # fmt: skip
        since = min(c.state.changed_at for c in held)
        next_outbox_id = _summaries(config, name, (since, now), down, now, next_outbox_id, write)
        holds += [(c, None, 0.0) for c in held]
    return (write if write.outbox else None), next_outbox_id, holds


def _summaries(
    config: Config,
    window: str,
    span: tuple[float, float],
    down: list[maintenance.StillDown],
    now: float,
    next_outbox_id: int,
    write: store.Write,
) -> int:
    """One summary row per channel of the checks `down`, added to `write`; the next free outbox id."""
    by_channel: dict[str, list[dict[str, object]]] = {}
    for d in down:
        for channel in d.channels:
            by_channel.setdefault(channel, []).append({"check": d.check, "reason": d.reason, "since": d.since})
    for channel, items in by_channel.items():
        if channel in config.channels:
            write.outbox.append(
                outbox.maintenance_row(next_outbox_id, channel, window, span, items, now, config.alerts)
            )
            next_outbox_id += 1
    return next_outbox_id
