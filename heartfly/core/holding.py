"""The pings a check holds for the reorder window (CheckState.waiting): where a run's duration
is judged, a success whose start may still be on its way and a failure a success may be on its
way before, and the pings newer than them queued behind them; and the pings dated after a
deadline that a back-dated ping made due. Which ping is held, and how; heartfly.core.states
applies them in event order once they may be (the window has passed, or the run's start came).
Pure."""

from __future__ import annotations

from heartfly.core.config import CheckConfig
from heartfly.core.deadlines import BACKDATED, next_timer
from heartfly.core.stateops import judges_duration
from heartfly.core.statetypes import CheckState, DeadlineKind, Event, Kind, Status, Waiting

WAITING_MAX = 4  # pings a state holds for the reorder window at once (a fifth older than them is applied)
HELD_SUCCESS = (None, Kind.SUCCESS)  # the kinds of a held success: waiting for its start, or queued
_QUIET = (Kind.PROGRESS, Kind.LOG)  # signs of life, not of a run's start or end
_SUCCESS, _FAIL = Kind.SUCCESS, Kind.FAIL
_DOWN_STATUS = Status.DOWN


def _room(st: CheckState, ev: Event, now: float, window: float) -> bool:
    """Whether the state may hold `ev` at all: not in a batch (window 0), not when it holds as
    many as it can, and not one dated ahead (a client whose clock is fast: every deadline up to
    it would wait)."""
    return window > 0 and len(st.waiting) < WAITING_MAX and ev.at <= now + BACKDATED


def counts_streak(check: CheckConfig, st: CheckState) -> bool:
    """Whether the check counts `failures_before_alert` (2 or more) and is not down: its ends wait
    out the reorder window for the ends dated before them that may be on their way."""
    return check.failures_before_alert > 1 and st.status is not _DOWN_STATUS


def waits(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """Whether a success waits out the reorder window before it is applied, newer than every end
    applied, not in a batch (no window): on a check that judges a run's duration, one whose start
    may still be on its way (without run id, or whose run is not open); on one that counts
    `failures_before_alert` (2 or more) and is not down, any (failures dated before it may be on
    their way: in event order they came first, and their streak may have told a down)."""
    if not (check.min_runtime is not None or check.assertions or check.failures_before_alert > 1):
        return False  # most checks: none of these, and out
    if check.expect is not None or not (st.last_end_at is None or ev.at >= st.last_end_at):
        return False
    if not _room(st, ev, now, window):
        return False
    if counts_streak(check, st):
        return True
    return _start_may_come(check, st, ev)


def fail_waits(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """Whether a failure waits out the reorder window before it is applied, on a check that is not
    down: any, where it counts `failures_before_alert` (2 or more), and where a run's duration is
    judged, one without a run id or whose run is not open. A success dated before it may still be
    on its way, and in event order it came first: it would have broken the streak (told now, the
    down would be a false alarm), or closed the run and been judged on its duration (the down then
    was that success's, too fast say, dated by it). Whoever asks for two failures before an alert
    waits for the second anyway; 5 s more is what it costs to tell only what happened. A failure
    whose run id names an open start is that run's one end, and is applied at once, and so is one
    older than the newest end applied, as a success is (see waits): history, or a failure whose
    ping lost a race with a newer success's (reorder.overtaken tells its down and the recovery at
    once; held, it would be applied a second time). Not in a batch (no window), nor on a fan-in
    check (its members' ends count otherwise)."""
    if check.expect is not None or not _room(st, ev, now, window):
        return False
    if counts_streak(check, st):
        return True
    newest = st.last_end_at is None or ev.at >= st.last_end_at
    return newest and st.status is not _DOWN_STATUS and _start_may_come(check, st, ev)


def _start_may_come(check: CheckConfig, st: CheckState, ev: Event) -> bool:
    """Whether an end is judged on its run's duration while its start may still be on its way (it
    has no run id, or its run is not open): the start, or an end before it, may change its verdict."""
    return judges_duration(check) and (ev.run_id is None or ev.run_id not in st.runs)


def queues(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """Whether a ping that would not wait itself waits behind a success waiting out the reorder
    window, newer than it: a start, an end, or a sign of life behind a queued start or end (alone, it
    tells nothing of a run and touches only the stall clock, which it pushes only forward). In
    event order the success came first: a start or end applied now would come before it (a start
    its success would then close too late, a failure whose count or verdict it would have changed).
    All are applied in event order when the success is (the window has passed, or its run id's
    start came). Not in a batch (no window), nor when the state holds as many as it can."""
    return (
        bool(st.waiting)
        and ev.at >= st.waiting[0][0]
        and _room(st, ev, now, window)
        and (ev.kind not in _QUIET or queued(st))
        and not waits_itself(check, st, ev, now, window)
    )


def waits_itself(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """Whether `ev` waits out the reorder window on its own account (a success, see waits; a
    failure, see fail_waits), not merely behind another: its own window counts."""
    if ev.kind is _SUCCESS:
        return waits(check, st, ev, now, window)
    return ev.kind is _FAIL and fail_waits(check, st, ev, now, window)


def behind_held(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """Whether a ping waits behind a deadline that a back-dated ping made due and that waits out
    the reorder window: one dated after that deadline. Applied now, it would judge the deadline
    at once (nothing came in time for it, it would say), before the pings still on their way
    behind the back-dated one (a progress that shows no stall, a success that shows no overrun).
    Held, it is applied in event order when the window has passed, after the deadline is judged.
    Not in a batch (no window), nor when the state holds as many as it can."""
    if not (st.hold_until > now and _room(st, ev, now, window)):
        return False
    deadline = next_timer(check, st)
    return (
        deadline is not None
        and deadline.kind is not DeadlineKind.REMIND  # a reminder is no one's due, and no ping moves it
        and deadline.at < ev.at
        and deadline.at <= st.held_at  # held (fire_time): not a live one that merely lies ahead of now
    )


def queued(st: CheckState) -> bool:
    """Whether a ping other than a success waiting for its own start is held for the window."""
    return any(w[6] is not None for w in st.waiting)


def hold(st: CheckState, ev: Event, now: float, kind: Kind | None) -> CheckState:
    """`st`, changed in place and returned, holding `ev` for the reorder window in event order
    (kind None: a success that waits for its own start; else queued behind one)."""
    held: Waiting = (ev.at, ev.run_id, ev.exit_status, dict(ev.metrics) if ev.metrics else None, ev.member, now, kind)
    st.waiting = tuple(sorted((*st.waiting, held), key=lambda w: w[0]))
    return st


def wait(st: CheckState, ev: Event, now: float, window: float) -> None:
    """A success held for its own start (see waits; held as kind None), or a failure for the window
    (see fail_waits), in place."""
    hold(st, ev, now, None if ev.kind is _SUCCESS else ev.kind)
    # Its END deadline (its own time) and every one before then wait until the window has passed.
    st.held_at = max(st.held_at, now, ev.at)
    st.hold_until = max(st.hold_until, st.held_at + window)


def waits_for(check: CheckConfig, st: CheckState, run_id: str) -> bool:
    """Whether the oldest ping held for the reorder window is a success waiting for this run's start
    alone: not on a check that counts `failures_before_alert` (2 or more) and is not down, where it
    also waits for the failures dated before it that may be on their way (see waits)."""
    if counts_streak(check, st):
        return False
    return bool(st.waiting) and st.waiting[0][1] == run_id and st.waiting[0][6] is None


def armed_after(st: CheckState, at: float, arrived: float) -> bool:
    """Whether a pipeline step was armed (step_since) after a success of its own held for the
    reorder window (dated `at`, its ping arrived `arrived`): in event order that success came
    first, and did the part of an arming before it, not of this one, which it leaves standing."""
    return st.step_since is not None and at < st.step_since and arrived < st.step_since


def disarms_held(st: CheckState, upstream_at: float) -> bool:
    """Whether a success a pipeline step holds for the reorder window, dated by `upstream_at`
    (its upstream's new trigger), will disarm the step as it is armed now once it is applied:
    the new trigger came after it and must arm the step anew (states.arm_step)."""
    return any(w[6] in HELD_SUCCESS and w[0] <= upstream_at and not armed_after(st, w[0], w[5]) for w in st.waiting)


def hold_longer(st: CheckState, now: float, window: float) -> None:
    """A back-dated ping on a state holding others: its deadlines wait `window` from now too."""
    st.held_at, st.hold_until = max(now, st.held_at), max(now + window, st.hold_until)


def set_soon(check: CheckConfig, before: CheckState, after: CheckState, now: float) -> float | None:
    """The deadline a back-dated ping set (`before` it, the next one was another) that falls due
    within the reorder window after its arrival: the pings dated before it may be as late as this
    one, so it is held with the window as one already past would be. None for any other."""
    deadline = next_timer(check, after)
    if deadline is None or deadline.kind is DeadlineKind.REMIND or not now < deadline.at < after.hold_until:
        return None
    return None if next_timer(check, before) == deadline else deadline.at
