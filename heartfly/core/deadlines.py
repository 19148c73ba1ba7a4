"""Deadlines: when time alone changes a check's status, and what firing them does.

Pure, like the state machine it serves (states.py): every deadline is derived from a state's
stored fields by `next_deadline`, so restarts, reloads and tests all see the same ones; the engine's
timer asks `fire_time` when to judge one, and `fire_due` fires those due, each as of its own instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from heartfly.core.checkconfig import CheckConfig
from heartfly.core.runs import close_fan_in
from heartfly.core.stateops import set_status
from heartfly.core.statetypes import CheckState, Deadline, DeadlineKind, Flip, Reason, RunEnd, RunOutcome, Status
from heartfly.core.units import human_duration

# As in states.py: enum members as module constants (an enum class attribute costs ten globals).
_LATE, _DOWN, _PAUSED = Status.LATE, Status.DOWN, Status.PAUSED
_DL_LATE, _DL_MISSED, _DL_REMIND = DeadlineKind.LATE, DeadlineKind.MISSED, DeadlineKind.REMIND
_DL_END = DeadlineKind.END
_DL_RUN = (DeadlineKind.OVERRUN, DeadlineKind.STALL, DeadlineKind.INCOMPLETE)  # an open run's limits

# Applies the oldest ping held for the reorder window (states' _release) to a state in place:
# its detail, as an event's.
Release = Callable[[CheckConfig, CheckState, float, list[RunEnd]], str]

BACKDATED = 1.0  # an event older than its arrival by more than this was replayed, not just sent
# After a downtime, a deadline inside it or soon after the restart moves past that (the load's
# Downtime): a ping that met the stopped server may still be on its way (`heartfly run` retries
# it, its waits doubling, 0.5 s first, 8 s at most, each ±20 %), and must not arrive to find an
# alert sent for it. With the jitter, the retry after a downtime of L seconds comes within
# 1.5 L + 0.6 s of its end: the deadline moves to 1 s plus 1.5 L after the restart, this at
# most (the longest wait, 9.6 s, fits it).
RESTART_SETTLE = 10.0


def fire_time(st: CheckState, deadline: Deadline) -> float:
    """When the timer judges a deadline: at its instant, unless a back-dated event made it due
    (it lies at or before that event's arrival): then once the reorder window has passed."""
    if deadline.at <= st.held_at < st.hold_until:
        return st.hold_until
    return deadline.at


def next_deadline(check: CheckConfig, st: CheckState) -> Deadline | None:
    """The next instant at which time alone changes this check's status (or reminds of it)."""
    best = next_timer(check, st)
    if st.waiting:  # a ping held for the reorder window: applied as of its own time, first
        end = Deadline(st.waiting[0][0], _DL_END)
        if best is None or end.at <= best.at:
            return end
    return best


def next_timer(check: CheckConfig, st: CheckState) -> Deadline | None:
    """next_deadline, but for the pings held for the reorder window."""
    best = _timer(check, st)
    if best is not None and best.at < st.not_before:  # a limit a reload shortened past: at the reload
        return Deadline(st.not_before, best.kind)
    return best


def _timer(check: CheckConfig, st: CheckState) -> Deadline | None:
    if st.status is _DOWN:
        remind = (
            None
            if check.repeat is None or st.alerted_at is None
            else Deadline(st.alerted_at + check.repeat, _DL_REMIND)
        )
        if st.folded and st.step_due is not None:
            # A step whose down was folded into its upstream's alert, armed again: judged on its
            # own (told, if its upstream is up by then), or nobody would hear it never ran.
            remind = _earlier(remind, Deadline(st.step_due + st.slack, DeadlineKind.STEP))
        # A run open while down still ends at its limit (recorded; the down stands): left open, it
        # would fire once a later run's success brought the check up, and take it down again.
        run = _run_deadline(check, st)
        return remind if run is None else _earlier(remind, run)
    if st.status is _PAUSED:
        return None
    best: Deadline | None = None
    if math.isfinite(st.due_at):
        if st.status is _LATE:
            best = Deadline(st.due_at + check.grace + st.slack, _DL_MISSED)
        else:
            best = Deadline(st.due_at + st.slack, _DL_LATE if check.grace > 0 else _DL_MISSED)
    if st.step_due is not None:
        best = _earlier(best, Deadline(st.step_due + st.slack, DeadlineKind.STEP))
    run = _run_deadline(check, st)
    return best if run is None else _earlier(best, run)


def _run_deadline(check: CheckConfig, st: CheckState) -> Deadline | None:
    """The earliest limit of the open runs: an overrun, an incomplete batch or a stall."""
    best: Deadline | None = None
    if st.runs:
        if check.expect is not None:
            limit = check.max_runtime if check.max_runtime is not None else check.grace
            best = Deadline(batches_from(st) + limit + st.slack, DeadlineKind.INCOMPLETE)
        elif check.max_runtime is not None:
            first = min(run.started_at for run in st.runs.values())
            best = Deadline(first + check.max_runtime + st.slack, DeadlineKind.OVERRUN)
        if check.stall is not None:
            best = _earlier(best, Deadline(quiet_from(st) + check.stall + st.slack, DeadlineKind.STALL))
    return best


def batches_from(st: CheckState) -> float:
    """Whence a fan-in's open batches' time limit counts: their first worker's ping, or the last
    resume if after it (a batch under way at a pause is judged from the resume, as in event order
    one whose first ping arrives after it: statecontrol._under_way). Their starts stay true, so
    a batch's duration (min_runtime, a `duration` assertion, its run) counts the pause too."""
    return max(min(run.started_at for run in st.runs.values()), st.resumed_at)


def quiet_from(st: CheckState) -> float:
    """Whence the open runs' stall clock counts: their last sign of life, or the last resume if
    after it (a run under way at a pause is not judged for the time it was paused; as in event
    order one whose start, dated before the pause, arrives after it: statecontrol._under_way)."""
    return max(min(run.active_at for run in st.runs.values()), st.resumed_at)


def fire_due(
    check: CheckConfig,
    st: CheckState,
    upto: float,
    now: float,
    ended: list[RunEnd],
    *,
    held: bool,
    release: Release | None = None,
) -> tuple[Deadline | None, str, float | None]:
    """Fire the deadlines due by `upto`, each as of its own instant: with `held`, those whose fire
    time has come; without, those whose instant lies before `upto`. Returns the last deadline fired,
    its detail, and the fire time of the next deadline of `st` as left (None: it has none; NaN: not
    looked at, for a reminder, a success or the last of the handful fired). A held ping that
    is due is applied by `release` in a firing of its own; without `release`, nothing from it on
    fires (the caller applies it after)."""
    last: Deadline | None = None
    detail = ""
    quiet = False  # a run of a check down already ended at its limit in this firing (below)
    for _ in range(8):  # each step moves the status forward; a handful always suffices
        deadline = next_deadline(check, st)
        if deadline is None:
            return last, detail, None
        if held:  # fire_time, inline: this runs for every ping
            fires = st.hold_until if deadline.at <= st.held_at < st.hold_until else deadline.at
            if fires > upto:
                return last, detail, fires
        elif deadline.at >= upto:
            break
        kind, at = deadline.kind, deadline.at
        if kind is _DL_END:
            # One success per firing, and nothing else in it, as one event is one step: the
            # changes it makes and those before it are told apart. The next firing applies it.
            if release is None or last is not None or quiet:
                return last, detail, fire_time(st, deadline)
            return last, release(check, st, now, ended), math.nan
        told = last, detail
        last = deadline
        if kind is _DL_REMIND:
            st.alerted_at = now
            detail = "still down"
            break  # one reminder per firing, however long the server was away
        if kind is _DL_LATE:
            set_status(st, _LATE, None, at, now)
        elif kind is _DL_MISSED:
            set_status(st, Status.DOWN, Reason.MISSED, at, now)
            detail = _missed(check, st, at)
        elif kind is DeadlineKind.STEP:
            upstream = f"{check.after}'s {check.after_trigger}"
            detail = f"no success within {human_duration(check.within or 0)} of {upstream}"
            if st.step_since is None:  # armed by its upstream's recovery (arm_folded)
                detail += ", and none by the time the steps above it were up again"  # which one: not kept
            if st.status is _DOWN:  # a folded down judged again (next_timer): a down of its own now
                st.reason, st.alerted_at, st.folded = Reason.STEP_MISSED, now, False
            st.step_due = st.step_since = None
            set_status(st, Status.DOWN, Reason.STEP_MISSED, at, now)
        elif st.status is _DOWN and not st.folded:
            # A run of a check down already ends at its limit (recorded) and tells nothing: what
            # this firing tells (a folded step's own miss judged before it, say) stands.
            give_up_run(check, st, kind, at, now, ended)
            last, detail, quiet = *told, True
        else:
            folded = st.status is _DOWN
            detail = give_up_run(check, st, kind, at, now, ended)
            if folded:  # its down folded into an upstream's alert: its own run's end is news, as its failure
                st.folded, st.reason, st.alerted_at = False, Reason(ended[-1].outcome.value), now
                st.told_at = max(at, st.told_at, st.changed_at)  # its status has not changed: changed_at stands
    return last, detail, math.nan


def _missed(check: CheckConfig, st: CheckState, at: float) -> str:
    """A missed deadline's words: a run that started and hung (no max_runtime to end it) is no job
    that did not run."""
    started = hung_since(check, st, at)
    if started is None:
        words = "no ping arrived by the deadline"
    else:
        words = f"it started {human_duration(at - started)} before the deadline but had not finished by it"
    # Judged that much after the due time the alert shows: else Heartfly seems to have noticed late.
    return f"{words}, moved {human_duration(st.slack)} later by Heartfly's own downtime" if st.slack else words


def hung_since(check: CheckConfig, st: CheckState, missed_at: float) -> float | None:
    """The start of the oldest run still open that began since the schedule's anchor (the last end,
    or a start that moved it) and by the deadline missed at `missed_at`: that deadline caught a job
    that started and hung. None for none (a run left open before the job's later ends, its end
    lost, is not this run; nor one that started after the deadline), and on a schedule whose start
    moves the anchor (cron, max_runtime: a start there is the run of the next deadline, and
    max_runtime ends a hung run itself)."""
    if check.cron is not None or check.max_runtime is not None:
        return None
    runs = st.runs.values()
    return min((run.started_at for run in runs if st.anchor <= run.started_at <= missed_at), default=None)


def give_up_run(
    check: CheckConfig, st: CheckState, kind: DeadlineKind, at: float, now: float, ended: list[RunEnd]
) -> str:
    """An overrun, stalled or incomplete run is over at `at`: recorded, and its end, if it comes,
    closes nothing."""
    if kind is DeadlineKind.STALL:
        rid = min(st.runs, key=lambda r: st.runs[r].active_at)
    else:
        rid = min(st.runs, key=lambda r: st.runs[r].started_at)
    run = st.runs.pop(rid)
    if check.expect is not None:  # a fan-in batch given up (incomplete, or stalled): its stragglers count nothing
        close_fan_in(st, rid, failed=True)
    if kind is DeadlineKind.STALL:
        quiet = human_duration(at - max(run.active_at, st.resumed_at))
        if run.active_at < st.resumed_at:  # under way, and silent, at a resume: its clock restarted there
            quiet += " since the resume"
        detail = f"no progress for {quiet} (stall limit {human_duration(check.stall or 0)})"
        reason, outcome = Reason.STALLED, RunOutcome.STALLED
    elif kind is DeadlineKind.INCOMPLETE:
        detail = f"{run.successes} of {check.expect} successes arrived"
        expected = check.members or st.last_members
        missing = [m for m in expected if m not in run.members]
        if missing:
            detail += "; missing: " + ", ".join(missing)
        if run.unnamed and check.members:  # not counted: why "0 of 3" when the workers did run
            many = "success" if run.unnamed == 1 else "successes"
            detail += f"; {run.unnamed} {many} named no member (members lists who counts)"
        reason, outcome = Reason.INCOMPLETE, RunOutcome.INCOMPLETE
    else:
        limit = human_duration(check.max_runtime or 0)
        detail = f"still running after {human_duration(at - run.started_at)} (max_runtime {limit})"
        reason, outcome = Reason.OVERRUN, RunOutcome.OVERRUN
    ended.append(RunEnd(rid or None, run.started_at, at, outcome, None, detail, run.members))
    set_status(st, Status.DOWN, reason, at, now)
    return detail


def flip_of(old: CheckState, new: CheckState, now: float, fired: Deadline | None, detail: str) -> Flip | None:
    """The change from `old` to `new`, dated when it happened (`new.changed_at`), learned `now`."""
    if old.status is new.status:
        if fired is not None and fired.kind is _DL_REMIND:
            return Flip(now, old.status, new.status, new.reason, fired.at, detail, reminder=True)
        if fired is not None and fired.kind is DeadlineKind.STEP and old.folded and not new.folded:
            # A step's folded down judged again: told as a down of its own (unless folded again).
            learned = now if now - fired.at > BACKDATED else None
            return Flip(fired.at, _DOWN, _DOWN, Reason.STEP_MISSED, fired.at, detail, learned_at=learned)
        if fired is not None and fired.kind in _DL_RUN and old.folded and not new.folded:
            # A folded step's own run ended at its limit: news of its own, told as its down.
            learned = now if now - fired.at > BACKDATED else None
            return Flip(new.told_at, _DOWN, _DOWN, new.reason, fired.at, detail, learned_at=learned)
        if fired is None and old.status is _DOWN and old.folded and not new.folded:
            # A folded step's own failure: news of its own, told as its down (stateops.failure).
            at = new.told_at
            return Flip(at, _DOWN, _DOWN, new.reason, None, detail, learned_at=now if now - at > BACKDATED else None)
        return None
    at = new.changed_at
    return Flip(
        at=at,
        old=old.status,
        new=new.status,
        reason=new.reason,
        deadline=fired.at if fired is not None else None,
        detail=detail if new.status is Status.DOWN or not fired else "",
        learned_at=now if now - at > BACKDATED else None,
    )


def _earlier(a: Deadline | None, b: Deadline) -> Deadline:
    return b if a is None or b.at < a.at else a
