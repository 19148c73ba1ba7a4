"""The state machine. Pure: (check, state, event, now) -> (new state, flip or None).

Every timer is derived from stored fields by `next_deadline`, so restarts, reloads and tests
all see the same deadlines. Time always comes in as an argument.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from heartfly.config import CheckConfig
from heartfly.schedule import next_due
from heartfly.units import format_duration

MAX_OPEN_RUNS = 64  # a job that only ever starts must not grow its state without bound
IMPLICIT_RUN = ""  # the run id of a start that carried none


class Status(StrEnum):
    NEW = "new"
    UP = "up"
    RUNNING = "running"
    LATE = "late"
    DOWN = "down"
    PAUSED = "paused"


class Reason(StrEnum):
    MISSED = "missed"
    FAILED = "failed"
    OVERRUN = "overrun"
    TOO_FAST = "too_fast"


class Kind(StrEnum):
    SUCCESS = "success"
    START = "start"
    FAIL = "fail"
    LOG = "log"
    PROGRESS = "progress"


class Event(NamedTuple):  # a NamedTuple, not a frozen dataclass: built on every ping
    """A ping as the state machine sees it."""

    kind: Kind
    at: float
    run_id: str | None = None
    exit_status: int | None = None


@dataclass(slots=True)
class CheckState:
    status: Status = Status.NEW
    reason: Reason | None = None
    changed_at: float = 0.0  # when status last changed
    watched_from: float = 0.0  # first seen in the config, or resumed
    anchor: float = 0.0  # the schedule counts from here: last run event or watched_from
    due_at: float = 0.0  # next run due (before grace), from anchor
    due_since: float = 0.0  # a run event at or after this satisfies due_at
    slack: float = 0.0  # server downtime added to the current deadlines
    last_ping_at: float | None = None
    last_ping_kind: Kind | None = None
    last_success_at: float | None = None
    last_start_at: float | None = None
    last_duration: float | None = None
    last_exit_status: int | None = None
    failures: int = 0  # consecutive
    runs: dict[str, float] = field(default_factory=dict)  # open runs: run id -> start
    alerted_at: float | None = None  # the last down alert or reminder, while down

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: that deep-copies recursively, and this runs for every ping.
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckState:
        known = {f.name for f in dataclasses.fields(cls)}
        st = cls(**{k: v for k, v in data.items() if k in known})
        st.status = Status(st.status)
        st.reason = Reason(st.reason) if st.reason else None
        st.last_ping_kind = Kind(st.last_ping_kind) if st.last_ping_kind else None
        st.runs = dict(st.runs)
        return st

    def copy(self) -> CheckState:
        # Positional, not dataclasses.replace: this runs for every ping and replace is several times slower.
        return CheckState(
            self.status, self.reason, self.changed_at, self.watched_from, self.anchor, self.due_at,
            self.due_since, self.slack, self.last_ping_at, self.last_ping_kind, self.last_success_at,
            self.last_start_at, self.last_duration, self.last_exit_status, self.failures, dict(self.runs),
            self.alerted_at,
        )  # fmt: skip


_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(CheckState))


@dataclass(frozen=True, slots=True)
class Flip:
    """A change of status: recorded, logged, and (for down and recovery) alerted."""

    at: float  # when the change was made
    old: Status
    new: Status
    reason: Reason | None
    deadline: float | None  # the deadline that caused it, for timer-made flips
    detail: str
    reminder: bool = False  # not a change: still down, reminded after `repeat`

    @property
    def is_down(self) -> bool:
        return self.new is Status.DOWN

    @property
    def is_recovery(self) -> bool:
        return self.old is Status.DOWN and self.new not in (Status.DOWN, Status.PAUSED)

    @property
    def alerts(self) -> bool:
        """Down, recovery and reminders are told to the check's channels; other changes are not."""
        return self.reminder or self.is_down or self.is_recovery


class Deadline(NamedTuple):
    at: float
    kind: str  # "late", "missed", "overrun" or "remind"


def initial_state(check: CheckConfig, now: float) -> CheckState:
    st = CheckState(changed_at=now, watched_from=now, anchor=now)
    _set_due(check, st)
    return st


def next_deadline(check: CheckConfig, st: CheckState) -> Deadline | None:
    """The next instant at which time alone changes this check's status (or reminds of it)."""
    if st.status is Status.DOWN:
        if check.repeat is None or st.alerted_at is None:
            return None
        return Deadline(st.alerted_at + check.repeat, "remind")
    if st.status is Status.PAUSED:
        return None
    best: Deadline | None = None
    if st.status is Status.LATE:
        best = Deadline(st.due_at + check.grace + st.slack, "missed")
    else:
        best = Deadline(st.due_at + st.slack, "late" if check.grace > 0 else "missed")
    if st.runs and check.max_runtime is not None:
        overrun = Deadline(min(st.runs.values()) + check.max_runtime + st.slack, "overrun")
        if overrun.at < best.at:
            best = overrun
    return best


def advance(check: CheckConfig, st: CheckState, now: float) -> tuple[CheckState, Flip | None]:
    """Fire every deadline at or before `now`."""
    new = st.copy()
    fired = _fire_due(check, new, now)
    return new, _flip(st, new, now, fired, "")


def apply_event(check: CheckConfig, st: CheckState, ev: Event, now: float) -> tuple[CheckState, Flip | None]:
    """Apply one ping, then any deadline it leaves in the past (a spooled ping carries an old time)."""
    new = st.copy()
    if new.last_ping_at is None or ev.at >= new.last_ping_at:
        new.last_ping_at = ev.at
        new.last_ping_kind = ev.kind
    detail = ""
    if ev.kind is Kind.START:
        _start(check, new, ev)
    elif ev.kind is Kind.SUCCESS:
        detail = _end(check, new, ev, failed=False)
    elif ev.kind is Kind.FAIL:
        detail = _end(check, new, ev, failed=True)
    fired = _fire_due(check, new, now)
    return new, _flip(st, new, now, fired, detail)


def pause(st: CheckState, now: float) -> tuple[CheckState, Flip | None]:
    new = st.copy()
    new.status, new.reason = Status.PAUSED, None
    return new, _flip(st, new, now, None, "paused by an operator")


def resume(check: CheckConfig, st: CheckState, now: float) -> tuple[CheckState, Flip | None]:
    """Watch again from now, as if the check had just appeared."""
    if st.status is not Status.PAUSED:
        return st, None
    new = rewatch(check, st, now)
    new.status = Status.UP if new.last_ping_at is not None else Status.NEW
    return new, _flip(st, new, now, None, "resumed by an operator")


def rewatch(check: CheckConfig, st: CheckState, now: float) -> CheckState:
    """A check back in the config after an absence: its schedule restarts from now.

    Down and paused stay as they are (only a ping or an operator changes those); open runs from
    before the absence are dropped so they cannot overrun at once.
    """
    new = st.copy()
    if new.status not in (Status.DOWN, Status.PAUSED):
        new.status = Status.UP if new.last_ping_at is not None else Status.NEW
    new.watched_from = now
    new.runs.clear()
    _move_anchor(check, new, now, force=True)
    return new


def reconfigure(check: CheckConfig, st: CheckState) -> CheckState:
    """The check's schedule may have changed: recompute its due time from the same anchor."""
    new = st.copy()
    _set_due(check, new)
    return new


def account_downtime(check: CheckConfig, st: CheckState, stopped_at: float, started_at: float) -> CheckState:
    """After a restart: a deadline inside the downtime moves back by the downtime's length.

    Deadlines before the stop are left alone, so `advance` fires them at once.
    """
    deadline = next_deadline(check, st)
    if deadline is None or not stopped_at <= deadline.at < started_at:
        return st
    new = st.copy()
    new.slack += started_at - stopped_at
    return new


def _start(check: CheckConfig, st: CheckState, ev: Event) -> None:
    st.runs[ev.run_id or IMPLICIT_RUN] = ev.at
    while len(st.runs) > MAX_OPEN_RUNS:
        del st.runs[min(st.runs, key=st.runs.__getitem__)]
    st.last_start_at = max(st.last_start_at or ev.at, ev.at)
    # A start anchors a cron schedule; an `every` schedule only when max_runtime guards the end.
    if check.cron is not None or check.max_runtime is not None:
        _move_anchor(check, st, ev.at)
    if st.status in (Status.NEW, Status.UP, Status.LATE):
        _set_status(st, Status.RUNNING, None, ev.at)


def _end(check: CheckConfig, st: CheckState, ev: Event, *, failed: bool) -> str:
    started = _close_run(st, ev.run_id)
    duration = None if started is None else max(0.0, ev.at - started)
    st.last_duration = duration
    st.last_exit_status = ev.exit_status
    _move_anchor(check, st, ev.at)
    if st.status is Status.PAUSED:
        return ""
    if not failed and check.min_runtime is not None and duration is not None and duration < check.min_runtime:
        st.failures += 1
        _set_status(st, Status.DOWN, Reason.TOO_FAST, ev.at)
        return (
            f"finished after {format_duration(duration)}, sooner than min_runtime {format_duration(check.min_runtime)}"
        )
    if failed:
        st.failures += 1
        _set_status(st, Status.DOWN, Reason.FAILED, ev.at)
        return "failed" if ev.exit_status is None else f"failed with exit status {ev.exit_status}"
    st.failures = 0
    st.last_success_at = max(st.last_success_at or ev.at, ev.at)
    _set_status(st, Status.RUNNING if st.runs else Status.UP, None, ev.at)
    return ""


def _close_run(st: CheckState, run_id: str | None) -> float | None:
    if run_id is not None:
        return st.runs.pop(run_id, None)
    if not st.runs:
        return None
    latest = max(st.runs, key=st.runs.__getitem__)
    return st.runs.pop(latest)


def _fire_due(check: CheckConfig, st: CheckState, now: float) -> Deadline | None:
    last: Deadline | None = None
    for _ in range(8):  # each step moves the status forward; a handful always suffices
        deadline = next_deadline(check, st)
        if deadline is None or deadline.at > now:
            break
        last = deadline
        if deadline.kind == "remind":
            st.alerted_at = now
            break  # one reminder per firing, however long the server was away
        if deadline.kind == "late":
            _set_status(st, Status.LATE, None, now)
        elif deadline.kind == "missed":
            _set_status(st, Status.DOWN, Reason.MISSED, now)
        else:
            # The overdue run is given up on: its end, if it ever comes, closes no run.
            oldest = min(st.runs, key=st.runs.__getitem__)
            del st.runs[oldest]
            _set_status(st, Status.DOWN, Reason.OVERRUN, now)
    return last


def _flip(old: CheckState, new: CheckState, now: float, fired: Deadline | None, detail: str) -> Flip | None:
    if old.status is new.status:
        if fired is not None and fired.kind == "remind":
            return Flip(now, old.status, new.status, new.reason, fired.at, "still down", reminder=True)
        return None
    if fired is not None and new.status is Status.DOWN:
        detail = _timer_words(fired, new)
    return Flip(
        at=now,
        old=old.status,
        new=new.status,
        reason=new.reason,
        deadline=fired.at if fired is not None else None,
        detail=detail,
    )


def _timer_words(fired: Deadline, st: CheckState) -> str:
    if fired.kind == "overrun":
        return "still running past max_runtime"
    return "no ping arrived by the deadline"


def _set_status(st: CheckState, status: Status, reason: Reason | None, at: float) -> None:
    if st.status is not status:
        st.changed_at = at
        st.alerted_at = at if status is Status.DOWN else None
    st.status, st.reason = status, reason


def _move_anchor(check: CheckConfig, st: CheckState, at: float, *, force: bool = False) -> None:
    if force or at > st.anchor:
        st.anchor = at
    else:
        return
    # A cron due time holds until a ping reaches its tick; an `every` one moves with each anchor.
    if force or check.every is not None or st.anchor >= st.due_since:
        _set_due(check, st)


def _set_due(check: CheckConfig, st: CheckState) -> None:
    due = next_due(check, st.anchor)
    st.due_at, st.due_since, st.slack = due.at, due.since, 0.0
