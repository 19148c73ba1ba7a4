"""A check's change of state as one write: its checkpoint, its flip, its finished runs and its
alerts, committed together (the engine's part, through ChangeRows). It decides ids, folding and
the log line; the rows' columns are the store's (heartfly.store.rows). Also the alerts maintenance
windows held: their summaries (windows.py decides them, this queues them and the holds they end).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from heartfly.core import maintenance, pipeline, states
from heartfly.core.holding import WAITING_MAX
from heartfly.core.maintenance import Window
from heartfly.core.states import CheckState, Flip
from heartfly.core.units import human_duration
from heartfly.core.views import PAUSE_META
from heartfly.notify import outbox
from heartfly.server import windows
from heartfly.store import rows as store

if TYPE_CHECKING:
    from heartfly.core.clock import Clock
    from heartfly.core.config import Config
    from heartfly.server.checks import Check
    from heartfly.store.api import WriteQueue

log = logging.getLogger("heartfly.server.engine")  # one log for every change of state, as before the split
_PAUSED = states.Status.PAUSED
_DOWN = states.Status.DOWN
# The longest a ping is held for the reorder window (each end held with others moves their window on).
_HELD_MAX = states.REORDER_WINDOW * WAITING_MAX


class ChangeRows:
    """The engine's part that turns steps (heartfly.core.states) into rows; it owns the flip and
    outbox ids they take."""

    log: logging.Logger = log  # a standby's view (loading.py) sets a quiet one
    config: Config
    clock: Clock
    checks: dict[str, Check]
    on_alerts: Callable[[], None] | None
    _next_flip_id: int
    _next_outbox_id: int
    _edges: dict[str, str]  # pipeline step -> its upstream
    _steps: dict[str, list[tuple[str, str]]]  # upstream -> [(step, trigger)]
    writer: WriteQueue
    windows_done: dict[str, float]  # maintenance window -> last moment handled (windows.py)
    _view: bool  # a cluster standby's picture (load's `view`): it tells nothing
    _holds_settled: bool  # a start has released the holds no window will tell: summaries may go

    def _mark_stored(self, check: Check) -> store.StateRow:
        raise NotImplementedError

    def _alerts_committed(self) -> None:
        """A commit's on_commit for its alert rows: wakes the dispatcher known then, not when the rows
        were made (those made while a start loads come before the dispatcher does)."""
        if self.on_alerts is not None:
            self.on_alerts()

    def _changes(
        self,
        check: Check,
        steps: Sequence[states.Step],
        old: CheckState,
        ping: store.PingRow | None = None,
        *,
        here: bool = True,
    ) -> store.Write:
        """The rows of several steps in a row (states.receive), committed together with the ping."""
        writes = []
        for i, step in enumerate(steps):
            # A ping that resumes a check (resume_on_ping) and takes it down again: no recovery between.
            down = any(later.flip is not None and later.flip.is_down for later in steps[i + 1 :])
            last = ping if i == len(steps) - 1 else None
            writes.append(self._change(check, step, old, last, here=here, down_next=down))
            old = step.state
        return store.merge(writes)

    def _change(
        self,
        check: Check,
        step: states.Step,
        old: CheckState,
        ping: store.PingRow | None = None,
        *,
        here: bool = True,
        down_next: bool = False,
    ) -> store.Write:
        """The rows of a change: checkpointed state, flip, finished runs and alerts, written together.
        `here`: the ping was taken by this node (not a standby's, from the inbox, applied later).
        `down_next`: a later step of the same ping takes the check down."""
        flip = step.flip
        if flip is not None and self._folds(check, flip, old):
            flip = dataclasses.replace(flip, detail=f"{flip.detail} (folded into the alert of upstream step"
                                       f" {self._down_upstream(check)})" if flip.is_down else flip.detail)  # fmt: skip
            check.state = dataclasses.replace(check.state, folded=True) if flip.is_down else check.state
            fold = True
        else:
            fold = False
        if flip is not None and flip.old is _PAUSED and flip.new not in (_DOWN, _PAUSED) and not down_next:
            # Resumed: the end of a down told before the pause, if one was (a receiver's incident open).
            flip = dataclasses.replace(flip, ends_down=True) if check.state.paused_down_since is not None else flip
        window = self._silenced(check, flip) if flip is not None and flip.event is not None and not fold else None
        told = check.state.down_told_to  # before this change moves it: a recovery goes there
        if flip is not None:
            self._note_told(check, flip, window, fold, told)
            self._note_paused_down(check, flip, old, told)
            if flip.is_down or (flip.new is not _DOWN and check.state.down_detail):
                check.state = dataclasses.replace(check.state, down_detail=flip.detail if flip.is_down else "")
        if flip is not None and flip.event is not None:
            self._note_hold(check, flip, window, fold)
        write = store.Write(ping=ping, state=self._mark_stored(check), runs=store.run_rows(check.id, step.ended))
        if flip is not None and flip.withdraws is not None:  # before it takes its id: those recorded before go
            write.amends.append(store.withdraw_flips_statement(check.id, flip.withdraws, self._next_flip_id))
        for run in step.ended:
            if run.replaces is not None:
                write.amends.append(store.replaced_run_statement(check.id, run))
        if flip is None:
            return write
        if here and flip.old is _PAUSED and flip.detail == states.RESUMED_BY_PING:
            # Resumed by a ping this node just took: the end of a timed pause, if any, goes with the
            # pause (an operator's resume deletes it where it was given: web/control.resume). Not
            # for a standby's ping, applied later: its row may come after a newer pause's end was
            # stored, which would be lost and that pause never end (a leftover end is dropped by
            # control._resume_at, once it has passed, with a warning).
            write.statements.append(store.delete_meta_statement(PAUSE_META + check.name))
        flip_id = None if flip.reminder else self._next_flip_id
        if flip_id is not None:
            self._next_flip_id += 1
            write.flip = store.flip_row(flip_id, check.id, flip)
            self._log_flip(check, flip)
        else:
            self.log.info("check %s: still %s, reminding", check.name, flip.new.value)
        if fold:
            return write
        if window is not None and flip.event is not None:  # (window implies an event: for mypy)
            held = "held for its summary" if window.alerts == "hold" else "dropped"
            self.log.info("check %s: its %s alert is %s: maintenance window %s", check.name, flip.event.value, held,
                          window.name)  # fmt: skip
            return write
        chain = pipeline.chain(check.name, self._edges, self._steps)
        facts = outbox.payload(check.config, flip, old, step.state, flip_id=flip_id, ping_id=check.ping_id, chain=chain)
        config = self.config
        rows = outbox.rows_for(
            check.config, check.id, flip, facts, config.channels, config.alerts, self._next_outbox_id, told
        )
        if rows:
            self._next_outbox_id += len(rows)
            write.outbox = rows
            write.on_commit = self._alerts_committed
        return write

    def _note_hold(self, check: Check, flip: Flip, window: Window | None, fold: bool) -> None:
        """After a change that alerts (or would): the state says which `hold` window holds its down
        alert for the summary, if one does. A down held sets it; one told drops it, as does any
        change out of down. A reminder, a folded alert or one a `drop` window drops tells nothing
        new of the down: a hold stands."""
        st = check.state
        if st.status is not states.Status.DOWN:
            hold: tuple[str | None, float] = (None, 0.0)
        elif flip.reminder or fold or (window is not None and window.alerts == "drop"):
            return
        elif window is not None:
            occurrence = window.active(self.clock.now())
            hold = (window.name, occurrence[1] if occurrence is not None else 0.0)
        else:  # told now
            hold = (None, 0.0)
        if (st.window_hold, st.window_end) != hold:
            check.state = dataclasses.replace(st, window_hold=hold[0], window_end=hold[1])

    def _note_paused_down(self, check: Check, flip: Flip, old: CheckState, told: tuple[str, ...] | None) -> None:
        """A down told, then paused: who was told and when it began, kept through the pause for
        the recovery its resume tells (CheckState.paused_down_since); gone with any other change."""
        st = check.state
        if flip.new is _PAUSED and flip.old is _DOWN and told:
            check.state = dataclasses.replace(st, down_told_to=told, paused_down_since=old.changed_at)
        elif flip.new is not _PAUSED and st.paused_down_since is not None:
            check.state = dataclasses.replace(st, paused_down_since=None)

    def _note_told(
        self, check: Check, flip: Flip, window: Window | None, fold: bool, told: tuple[str, ...] | None
    ) -> None:
        """Which channels are told the check is down (CheckState.down_told_to): those its down alert
        goes to, and those its reminders go to besides; nobody known once it is no longer down."""
        event = flip.event
        if flip.new is not states.Status.DOWN:
            now = None
        elif event is None or fold or window is not None:  # told nothing now
            # A down a `drop` window dropped was told to nobody, who hears nothing of its end either.
            dropped = window is not None and window.alerts == "drop"
            now = told if not flip.is_down else () if dropped else None
        else:
            names = outbox.hearers(check.config, event.value, self.config.channels, told)
            now = tuple(names) if flip.is_down or told is None else tuple(dict.fromkeys([*told, *names]))
        if check.state.down_told_to != now:
            check.state = dataclasses.replace(check.state, down_told_to=now)

    def _silenced(self, check: Check, flip: Flip) -> Window | None:
        windows = self.config.maintenance
        if not windows:
            return None
        now = self.clock.now()
        window = maintenance.silencing(windows, check.config, now)
        learned = min(flip.learned, now)
        change = flip.is_down or flip.is_recovery  # not a reminder: sent now, for now
        if (
            window is not None
            and change
            and now - learned <= _HELD_MAX
            and maintenance.silencing(windows, check.config, learned) is None
        ):
            # Learned just before the window began (a failure held for the reorder window, or a
            # success held for its start, applied once it had begun), when no window silenced it
            # (another covering it then, still under way or not, did): told, as it would have been
            # had it been applied as its ping came.
            window = None
        elif window is None and change and now - learned <= _HELD_MAX:
            # Learned within a `drop` window that ended since (held for the reorder window past
            # its end): dropped, as it would have been had it been applied as its ping came. A
            # `hold` window's summary went without it: told now, as its summary would have.
            then = maintenance.silencing(windows, check.config, learned)
            window = then if then is not None and then.alerts == "drop" else None
        if window is None and not flip.is_down and (held := check.state.window_hold) is not None:
            # Its down is held for a summary not told yet (its window just ended, or ended while
            # Heartfly was stopped): a reminder now would come before the down alert it reminds
            # of, a recovery after no down alert at all; back before the summary, it has nothing
            # left to say, as one back within the window.
            window = next((w for w in windows if w.name == held), None)
        if window is not None and flip.is_recovery and check.state.down_told_to:
            # Its down was told (before the window began): a `hold` window's summary tells only the
            # checks still down, a `drop` window nothing, so a recovery held or dropped for it
            # would never be told, and a receiver (an incident a webhook opened) keep it down.
            window = None
        return window

    def _folds(self, check: Check, flip: Flip, old: CheckState) -> bool:
        """A step's missed-type alerts (and their reminders and recovery) fold into a down upstream's."""
        if flip.is_recovery or flip.reminder:
            return old.folded
        missed = flip.reason in (states.Reason.MISSED, states.Reason.STEP_MISSED)
        return flip.is_down and missed and self._down_upstream(check) is not None

    def _down_upstream(self, check: Check) -> str | None:
        return pipeline.down_upstream(check.name, self._edges, self._is_down)

    def _is_down(self, name: str) -> bool:
        check = self.checks.get(name)
        return check is not None and check.state.status is states.Status.DOWN

    def _log_flip(self, check: Check, flip: Flip) -> None:
        reason = f" ({flip.reason.value})" if flip.reason else ""
        if flip.learned_at is not None:
            late = f", learned {human_duration(flip.learned_at - flip.at)} after it happened"
        elif flip.deadline is not None:  # dated at its deadline; found now: how late the timer was
            late = f", found {1000 * (self.clock.now() - flip.deadline):.1f} ms after its deadline"
        else:
            late = ""
        detail = f": {flip.detail}" if flip.detail else ""
        self.log.info("check %s: %s -> %s%s%s%s", check.name, flip.old.value, flip.new.value, reason, detail, late)

    # ---- maintenance windows' holds --------------------------------------------------------

    def close_windows(self, now: float) -> None:
        """Queue the summaries of held maintenance windows that ended (housekeeping, each round).
        Not before a start has read every state and released the holds no window will tell: its
        done marks would move past what release must see (a window changed to `drop` while stopped,
        a state stored before holds were kept)."""
        if not self.config.maintenance or not self._holds_settled:
            return
        write, self._next_outbox_id, told = windows.close(self.config, self.checks, self.windows_done, now,
                                                          self._next_outbox_id)  # fmt: skip
        if write is not None:
            if write.outbox:
                write.on_commit = self._alerts_committed
            self.writer.submit_nowait(write)
        # After the summary: a crash between tells it twice, never not.
        self._set_holds([(c, None, 0.0) for c in told], now)

    def release_holds(self, now: float, *, adopt: bool = False) -> None:
        """Tell the down alerts held for a maintenance window that will not tell them (removed or
        changed by a reload or while stopped, or no longer covering the check): at a reload, and
        once a start has read every state (`adopt`: holds a version before did not keep)."""
        if self._view:  # a standby's picture tells nothing
            return
        write, self._next_outbox_id, holds = windows.release(
            self.config, self.checks.values(), self.windows_done, now, self._next_outbox_id, adopt=adopt
        )
        if write is not None:
            write.on_commit = self._alerts_committed
            self.writer.submit_nowait(write)
        self._set_holds(holds, now)

    def _set_holds(self, holds: list[windows.Hold], now: float) -> None:
        """Each check's state takes its window hold (a window's name and its occurrence's end, or
        none), stored at once. A down whose hold ends is told now, by a summary: its reminders
        count from that, as from a down alert, and its recovery goes to the channels the summary
        went to (CheckState.down_told_to), as a down alert's does."""
        for check, name, end in holds:
            st = check.state
            alerted_at, told = st.alerted_at, st.down_told_to
            if name is None and st.status is states.Status.DOWN:
                summarized = [c for c in check.config.channels if c in self.config.channels]  # as _summaries
                alerted_at, told = now, tuple(dict.fromkeys([*(told or ()), *summarized]))
            check.state = dataclasses.replace(
                st, window_hold=name, window_end=end, alerted_at=alerted_at, down_told_to=told
            )
            self.writer.submit_nowait(store.Write(state=self._mark_stored(check)))
