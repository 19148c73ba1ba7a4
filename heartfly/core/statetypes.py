"""What the state machine works on: statuses, events, runs, a check's state, flips, deadlines,
and the names of the alerts a flip raises.

Plain data, no rules (those are heartfly.core.states, which re-exports every name here).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from heartfly.core.patterns import fold_run_id

E = TypeVar("E", bound=StrEnum)


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
    STALLED = "stalled"
    ASSERTION = "assertion"
    INCOMPLETE = "incomplete"
    STEP_MISSED = "step_missed"


class Kind(StrEnum):
    SUCCESS = "success"
    START = "start"
    FAIL = "fail"
    LOG = "log"
    PROGRESS = "progress"


class RunOutcome(StrEnum):
    """How a finished run ended: stored as is in the runs table (and a state's orphan_end)."""

    SUCCESS = "success"
    FAIL = "fail"
    # A verdict against a run is named after its Reason (states.RunOutcome(reason.value)).
    TOO_FAST = "too_fast"
    ASSERTION = "assertion"
    OVERRUN = "overrun"
    STALLED = "stalled"
    INCOMPLETE = "incomplete"


class DeadlineKind(StrEnum):
    """What passing a deadline means."""

    LATE = "late"
    MISSED = "missed"
    OVERRUN = "overrun"  # an open run past max_runtime
    STALL = "stall"  # an open run quiet past its stall limit
    INCOMPLETE = "incomplete"  # a fan-in run short of `expect` successes
    STEP = "step"  # a pipeline step not run within `within` of its upstream
    REMIND = "remind"  # still down: remind after `repeat`
    END = "end"  # a ping held for the reorder window (CheckState.waiting) is applied


class Event(NamedTuple):  # a NamedTuple, not a frozen dataclass: built on every ping
    """A ping as the state machine sees it."""

    kind: Kind
    at: float
    run_id: str | None = None
    exit_status: int | None = None
    metrics: Mapping[str, float] | None = None
    member: str | None = None  # a fan-in worker naming itself


# A ping held for the reorder window (CheckState.waiting): its time, run id, exit status, metrics
# and worker, when it arrived, and its kind: None for a success that waits for its own start, a
# Kind for a ping queued behind such a success or behind a held deadline (holding.behind_held).
Waiting = tuple[float, str | None, int | None, Mapping[str, float] | None, str | None, float, "Kind | None"]


# A span of progress or log pings of one run id that came before its start (CheckState.early_activity):
# the first and last ping's times, the newest arrival among them, the run id.
Activity = tuple[float, float, float, str | None]


class Run(NamedTuple):
    """An open run. Replaced, never mutated: states are snapshots."""

    started_at: float
    active_at: float  # the last start/progress/log ping: the stall clock
    successes: int = 0  # fan-in: successes so far
    members: tuple[str, ...] = ()  # fan-in: the workers that reported
    # Fan-in with `members` listed: successes naming no member, not counted (its incomplete
    # alert says how many: else "0 of 3 arrived" reads as if no worker ran). Stored only when not 0.
    unnamed: int = 0


class _NoRuns(dict[str, Run]):
    """The empty map of open runs that every state without one shares: a dict each would be 6 MiB
    for 100k checks. It refuses to gain a run, so a state adds its first through own_runs."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("the shared empty map of open runs is read-only: add a run through own_runs(state)")

    __setitem__ = setdefault = update = __ior__ = _refuse


NO_RUNS: dict[str, Run] = _NoRuns()


def own_runs(st: CheckState) -> dict[str, Run]:
    """The state's open runs, in a dict of its own that may gain one."""
    if type(st.runs) is _NoRuns:  # NO_RUNS, or a copy of it (copy.copy or pickle make one)
        st.runs = {}
    return st.runs


class RunEnd(NamedTuple):
    """A finished run, as stored in the runs table."""

    run_id: str | None
    started_at: float
    ended_at: float
    outcome: RunOutcome
    exit_status: int | None = None
    detail: str = ""
    members: tuple[str, ...] = ()
    # The (start, end) of a row this one replaces (same check, no run id): a start or an end that
    # arrived after an end had closed a run they belong to in event order (CheckState.paired_end).
    replaces: tuple[float, float] | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)


@dataclass(slots=True)
class CheckState:
    status: Status = Status.NEW
    reason: Reason | None = None
    changed_at: float = 0.0  # when status last changed
    watched_from: float = 0.0  # first seen in the config, or resumed
    anchor: float = 0.0  # the schedule counts from here: last run event or watched_from
    due_at: float = 0.0  # next run due (before grace), from anchor; inf for a pipeline step
    due_since: float = 0.0  # a run event at or after this satisfies due_at
    slack: float = 0.0  # server downtime added to the current deadlines
    last_ping_at: float | None = None
    last_ping_kind: Kind | None = None
    last_success_at: float | None = None
    last_start_at: float | None = None
    last_duration: float | None = None  # the last timed run's: an end that times none keeps it
    last_duration_at: float | None = None  # that run's end (an alert reports only its own run's)
    last_exit_status: int | None = None
    failures: int = 0  # consecutive
    runs: dict[str, Run] = field(default_factory=lambda: NO_RUNS)  # open runs by run id (see own_runs)
    alerted_at: float | None = None  # the last down alert or reminder, while down
    step_due: float | None = None  # a pipeline step: must succeed by then (armed by its upstream)
    step_since: float | None = None  # ...counting from this upstream event
    folded: bool = False  # its down alert was folded into an upstream step's (so is its recovery)
    last_members: tuple[str, ...] = ()  # fan-in: who reported in the last complete run
    last_end_at: float | None = None  # the newest success or failure: an older one (spooled) never flips
    closed_runs: tuple[str, ...] = ()  # fan-in: recently finished run ids (complete, incomplete or failed)
    # The newest end that closed no run: (its time, its arrival, outcome, exit status, run id). A
    # start that raced it and lost (older, the same run id or none, arriving within the reorder
    # window) is paired with it: the run is recorded with its duration, and no run is left open.
    orphan_end: tuple[float, float, RunOutcome, int | None, str | None] | None = None
    # Starts without a run id that a newer start replaced while still open, as (start, until when
    # an older end may still close it): an end between the two that arrives within the reorder
    # window closes the older run, as it would have in event order. Newest first, a few at most.
    superseded: tuple[tuple[float, float], ...] = ()
    # A back-dated event arrived at held_at: deadlines at or before then wait until hold_until.
    held_at: float = 0.0
    hold_until: float = 0.0
    # The event time of the last change somebody was told of or made: a down, a recovery, a pause
    # or a resume. Changes after it alerted nobody, so a failure that arrives late within the
    # reorder window may withdraw them and tell what happened in event order instead.
    told_at: float = 0.0
    prev_end_at: float | None = None  # the newest end older than last_end_at
    # The newest end that closed a run without run id: (the run's start, the end's time, until
    # when a start between them may still arrive (the reorder window), outcome, exit status, the
    # broken assertion on the end's own metrics or ""). In event order such a start would have
    # superseded that run and been closed by the end instead: the row is paired again.
    paired_end: tuple[float, float, float, RunOutcome, int | None, str] | None = None
    # An end without run id older than orphan_end that closed nothing either (as orphan_end): a
    # start older than both that arrives within the window belongs to it, not to the newer one.
    orphan_prev: tuple[float, float, RunOutcome, int | None, str | None] | None = None
    # The event times of the failures `failures` counts, oldest first (the newest STREAK_KEPT): a
    # success whose ping comes after newer failures' learns how many of them followed it.
    streak_ats: tuple[float, ...] = ()
    # The end of the last of Heartfly's own downtimes its deadlines were extended by (that restart's
    # start): a downtime applied again (a start that died while reading the states leaves its
    # downtime to the next) extends them only by what came after.
    downtime_to: float = 0.0
    # Pings held for the reorder window, applied in event order once it has passed: successes on a
    # check that judges a run's duration (min_runtime, a `duration` assertion) whose start may
    # still be on its way, the pings newer than the oldest of them queued behind it, and pings
    # dated after a deadline a back-dated ping made due (holding.behind_held):
    # (time, run id, exit status, metrics, worker, arrival, kind), oldest first (see Waiting).
    # A start that raced one of them and lost opens its run first, and the success closes the run
    # it would have closed in event order, judged on that run's duration.
    waiting: tuple[Waiting, ...] = ()
    # Progress or log pings that found no open run of their own, on a check with a stall limit,
    # as spans of pings less than the limit apart (first, last, newest arrival, run id), oldest
    # first. A start older than them that arrives within the reorder window after them (their
    # pings raced) counts them on its stall clock.
    early_activity: tuple[Activity, ...] = ()
    # Downtimes while pings were held here (a restart that came back within their reorder window,
    # and the starts before it that died while reading the states): (stopped_at, when the next
    # start began serving, settle_until), as Downtime.own(), oldest first. Each extends the
    # deadlines that a held ping which arrived before its start sets once applied (the others got
    # it at the start). Gone with the last held ping.
    held_over: tuple[tuple[float, float, float], ...] = ()
    # A `hold` maintenance window its down alert is held for, and the end of that window's
    # occurrence: its summary tells it. Kept in the state so that a window removed or changed by a
    # reload, or while Heartfly was stopped, still has its held alerts told (engine.release_holds).
    window_hold: str | None = None
    window_end: float = 0.0
    # The last resume (by an operator, a timed pause's end, or a ping under resume_on_ping): a
    # failure dated before it (sent while the check was paused, arriving after) counts as one that
    # came during the pause would have, not at all.
    resumed_at: float = 0.0
    # Ends without run id older than orphan_prev that closed nothing either, oldest first (two at
    # most): a start older than them all belongs to the oldest, as in event order.
    orphan_older: tuple[tuple[float, float, RunOutcome, int | None, str | None], ...] = ()
    # While down: the channels told so (its down alert or the window's summary that stands for it,
    # its reminders), which its recovery goes to, whatever channels a reload has given the check
    # since. None: not known (a down held for a window's summary not yet told, folded, or stored
    # before this was kept): its channels are told then. (): nobody (a `drop` window dropped it).
    down_told_to: tuple[str, ...] | None = None
    # Fan-in: the run ids among closed_runs of batches that failed (a worker's failure, a broken
    # assertion) or were given up, newest last: a worker's failure in one of them is no second
    # failure, where one after a batch that completed is a failure of its own.
    failed_runs: tuple[str, ...] = ()
    # A reload that shortened a limit (grace, max_runtime, stall, a batch's) past the check's time,
    # when the running config's next deadline still lay ahead: that reload's instant. A deadline
    # before it fires at it, as of it (no flip dated when the running config still waited); one
    # after it is as it was. Gone with the next due time set (set_due).
    not_before: float = 0.0
    # A pipeline step armed by its upstream's event (step_since): which upstream and event, as
    # `after` named them then ("extract.start"). A restart after an edit of `after` (no running
    # config to compare with) disarms it, as a reload does: else it would tell a miss "within 10
    # min of" an upstream that never triggered it. None: stored before this was kept.
    step_after: str | None = None
    # Paused while down, that down told (down_told_to, kept through the pause): when the down
    # began. The resume tells its recovery, with how long it was down, to the channels told.
    paused_down_since: float | None = None
    # While down: what took it down (its down alert's detail), which its reminders repeat.
    down_detail: str = ""

    def next_due(self) -> float | None:
        """When the next run is due (before grace), server downtime included; None for a pipeline
        step, which has no schedule of its own."""
        due = self.due_at + self.slack
        return due if math.isfinite(due) else None

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: that deep-copies recursively, and checkpoints run often. Fields at
        # their defaults are left out (from_json restores them): rows about half the size.
        data = {}
        for name, default in _STATE_DEFAULTS:
            value = getattr(self, name)
            if value != default:
                data[name] = value
        if self.runs:
            data["runs"] = {rid: list(run) if run.unnamed else list(run[:4]) for rid, run in self.runs.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], instants: dict[float, float] | None = None) -> CheckState:
        """A stored state. Equal instants in the states decoded with one `instants` (its top-level
        fields' and orphan_end's time) become one float object: a JSON decoder makes one per
        number, and a state holds the same instant in up to seven (100k states take 30 % less)."""
        # A restart decodes every check's state: the defaults and the row merged in one dict (a
        # field of a version with other fields stays in it unused), taken out in order as
        # positional arguments, with a loop here only to share the row's floats.
        try:
            fields = {**_DEFAULTS, **data}
        except TypeError:
            raise ValueError(f"a stored state is a JSON object, not {type(data).__name__}") from None
        share = (instants if instants is not None else {}).setdefault
        for name, value in data.items():
            # Floats but zeros: 5 and 5.0 are equal (an int stays an int), and so are 0.0 and -0.0.
            if value.__class__ is float and value:
                fields[name] = share(value, value)
        st = cls(*_FIELDS(fields))
        if "told_at" not in data:  # stored before it existed (a state since has it): nothing before
            st.told_at = st.changed_at  # its last change may be withdrawn, to be safe
        try:
            st.status, st.reason, st.last_ping_kind = (
                _STATUS_OF[st.status], _REASON_OF[st.reason], _KIND_OF[st.last_ping_kind]
            )  # fmt: skip
        except (KeyError, TypeError):  # a text that is no member: the enum's own error words it
            st.status = Status(st.status)
            st.reason = Reason(st.reason) if st.reason else None
            st.last_ping_kind = Kind(st.last_ping_kind) if st.last_ping_kind else None
        if "runs" in data:
            # Schema 1 stored a run as its start time alone. A UUID run id stored as sent (before
            # they were folded) is folded, as its end's is: a run open across the upgrade closes.
            # So is every run id a state keeps (_fold): a held end, a closed run, an orphan end.
            st.runs = {
                fold_run_id(rid): Run(float(v), float(v))
                if isinstance(v, (int, float))
                else Run(v[0], v[1], v[2], tuple(v[3]), v[4] if len(v) > 4 else 0)
                for rid, v in data["runs"].items()
            }
        if "last_members" in data:
            st.last_members = tuple(st.last_members)
        if "closed_runs" in data:
            st.closed_runs = tuple(map(fold_run_id, st.closed_runs))
        if "failed_runs" in data:
            st.failed_runs = tuple(map(fold_run_id, st.failed_runs))
        if "streak_ats" in data:
            st.streak_ats = tuple(st.streak_ats)
        if "superseded" in data:
            st.superseded = tuple((started, until) for started, until in st.superseded)
        if st.orphan_end is not None:
            at, arrived, outcome, exit_status, *rid = st.orphan_end  # stored before run ids: four items
            at = share(at, at) if at.__class__ is float and at else at
            st.orphan_end = (at, arrived, _member(RunOutcome, outcome), exit_status, _fold(rid[0] if rid else None))
        if st.orphan_prev is not None:
            at, arrived, outcome, exit_status, prev_rid = st.orphan_prev
            st.orphan_prev = (at, arrived, _member(RunOutcome, outcome), exit_status, _fold(prev_rid))
        if "orphan_older" in data:
            st.orphan_older = tuple((o[0], o[1], _member(RunOutcome, o[2]), o[3], _fold(o[4])) for o in st.orphan_older)
        if st.paired_end is not None:
            started, ended, until, outcome, exit_status, broken = st.paired_end
            st.paired_end = (started, ended, until, _member(RunOutcome, outcome), exit_status, broken)
        if "early_activity" in data:
            st.early_activity = tuple(
                (first, last, arrived, _fold(rid)) for first, last, arrived, rid in st.early_activity
            )
        if "waiting" in data:
            st.waiting = tuple(_held(*entry) for entry in st.waiting)
        if st.down_told_to is not None:
            st.down_told_to = tuple(st.down_told_to)
        if "held_over" in data:
            st.held_over = tuple((stopped_at, start, settle) for stopped_at, start, settle in st.held_over)
        return st

    def copy(self) -> CheckState:
        # Positional, not dataclasses.replace: this runs for every ping and replace is several times slower.
        return CheckState(
            self.status, self.reason, self.changed_at, self.watched_from, self.anchor, self.due_at,
            self.due_since, self.slack, self.last_ping_at, self.last_ping_kind, self.last_success_at,
            self.last_start_at, self.last_duration, self.last_duration_at, self.last_exit_status, self.failures,
            dict(self.runs) if self.runs else NO_RUNS,  # a dict of its own for a state with open runs
            self.alerted_at, self.step_due, self.step_since, self.folded, self.last_members,
            self.last_end_at, self.closed_runs, self.orphan_end, self.superseded, self.held_at, self.hold_until,
            self.told_at, self.prev_end_at, self.paired_end, self.orphan_prev, self.streak_ats, self.downtime_to,
            self.waiting, self.early_activity, self.held_over, self.window_hold, self.window_end, self.resumed_at,
            self.orphan_older, self.down_told_to, self.failed_runs, self.not_before, self.step_after,
            self.paused_down_since, self.down_detail,
        )  # fmt: skip


_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(CheckState))
_DEFAULTS = {name: getattr(CheckState(), name) for name in _STATE_FIELDS}
_FIELDS = operator.itemgetter(*_STATE_FIELDS)
# Each member by its text, and None for no member: from_json's lookups, without a call each.
_STATUS_OF: dict[Any, Status] = dict(Status._value2member_map_)
_REASON_OF: dict[Any, Reason | None] = {**Reason._value2member_map_, None: None, "": None}  # type: ignore[dict-item]
_KIND_OF: dict[Any, Kind | None] = {**Kind._value2member_map_, None: None, "": None}  # type: ignore[dict-item]


def _held(
    at: float, rid: str | None, code: int | None, metrics: Any, member: str | None, arrived: float, kind: Any = None
) -> Waiting:
    """A stored CheckState.waiting entry (one stored before pings queued has no kind: a success)."""
    return (at, _fold(rid), code, metrics, member, arrived, None if kind is None else _member(Kind, kind))


def _fold(run_id: str | None) -> str | None:
    """A stored run id as runs are paired by now (fold_run_id): one a version before stored as sent."""
    return None if run_id is None else fold_run_id(run_id)


def _member(enum: type[E], value: Any) -> E:
    """enum(value), without the slower way through EnumType.__call__ for a stored member's text."""
    try:
        return enum._value2member_map_[value]  # type: ignore[return-value]
    except (KeyError, TypeError):
        return enum(value)  # its ValueError for a text that is no member


_STATE_DEFAULTS = tuple((f.name, f.default) for f in dataclasses.fields(CheckState) if f.name != "runs")


class AlertEvent(StrEnum):
    """What an alert tells: the event column of the outbox, and a webhook body's "event"."""

    DOWN = "down"
    RECOVERY = "recovery"
    REMINDER = "reminder"  # still down, after `repeat`
    TEST = "test"  # an operator's test of a channel: no flip, no check
    MAINTENANCE = "maintenance"  # a held maintenance window ended: what went down in it, still down
    # Heartfly itself cannot do its job (its database cannot be written), and then can again: sent
    # from memory to [alerts] trouble_channels, not through the outbox, which is in that database.
    TROUBLE = "trouble"
    TROUBLE_OVER = "trouble_over"


@dataclass(frozen=True, slots=True)
class Flip:
    """A change of status: recorded, logged, and (for down and recovery) alerted."""

    at: float  # when the change happened (event time: a replayed ping's, or the deadline's)
    old: Status
    new: Status
    reason: Reason | None
    deadline: float | None  # the deadline that caused it, for timer-made flips
    detail: str
    reminder: bool = False  # not a change: still down, reminded after `repeat`
    learned_at: float | None = None  # when Heartfly learned of it, if later than `at`
    # Recorded with this flip, the check's changes dated after this instant are withdrawn: changes
    # that alerted nobody, which a late failure showed did not happen (this flip tells what did).
    withdraws: float | None = None
    # A resume that ends a down told before its pause (CheckState.paused_down_since): a recovery.
    ends_down: bool = False

    @property
    def learned(self) -> float:
        """When Heartfly knew: alerts are sent, and expire, from here."""
        return self.at if self.learned_at is None else self.learned_at

    @property
    def is_down(self) -> bool:
        return self.new is Status.DOWN and not self.reminder

    @property
    def is_recovery(self) -> bool:
        return (self.old is Status.DOWN or self.ends_down) and self.new not in (Status.DOWN, Status.PAUSED)

    @property
    def event(self) -> AlertEvent | None:
        """What the check's channels are told of this change: down, recovery or a reminder; None
        for the other changes, which alert nobody."""
        if self.reminder:
            return AlertEvent.REMINDER
        if self.is_down:
            return AlertEvent.DOWN
        if self.is_recovery:
            return AlertEvent.RECOVERY
        return None


class Deadline(NamedTuple):
    at: float  # the instant it stands for (event time)
    kind: DeadlineKind


class Step(NamedTuple):
    """What one event or one firing did."""

    state: CheckState
    flip: Flip | None
    ended: tuple[RunEnd, ...] = ()
