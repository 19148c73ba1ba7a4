"""What changes a check's state besides its pings and its deadlines: an operator's pause and
resume, a config that changes or brings a check back, and Heartfly's own downtime at a restart.
Pure; heartfly.core.states re-exports these with the rest of the state machine."""

from __future__ import annotations

from heartfly.core.anchors import move_anchor, set_due
from heartfly.core.bykind import complete_batches, recounted
from heartfly.core.checkconfig import CheckConfig
from heartfly.core.deadlines import flip_of, next_deadline
from heartfly.core.schedule import Due, next_due
from heartfly.core.stateops import set_status
from heartfly.core.statetypes import CheckState, Deadline, DeadlineKind, Run, RunEnd, Status, Step


def pause(st: CheckState, now: float, asked_at: float | None = None) -> Step:
    """Paused as of now, or of `asked_at` if before (a standby's pause, applied by the leader later:
    a ping that came after it ends it under resume_on_ping), never before the last change."""
    at = now if asked_at is None else min(asked_at, now)
    new = st.copy()
    new.status, new.reason, new.changed_at = Status.PAUSED, None, max(at, new.changed_at)
    new.told_at = new.changed_at
    new.folded = False  # no longer down: a fold goes with the down it folded (as set_status drops it)
    return Step(new, flip_of(st, new, now, None, "paused by an operator"))


def resume(
    check: CheckConfig,
    st: CheckState,
    now: float,
    why: str = "resumed by an operator",
    asked_at: float | None = None,
    *,
    only: str | None = None,
) -> Step:
    """Watch again from now, as if the check had just appeared: no failures in a row before the
    pause count towards failures_before_alert (the operator has likely fixed the job). A failure
    dated before the resume counts nothing (resumed_at). `asked_at`: when the operator asked, if
    before `now` (a standby's resume, applied by the leader later): a failure after it counts.
    `only`: the run id (or IMPLICIT_RUN) of the ping that resumes it (resume_on_ping), whose run
    alone is kept: a pause a ping ends may have lasted days, and the other runs under way at it
    (last night's batch, short of workers) would be judged from the resume, a false alarm."""
    if st.status is not Status.PAUSED:
        return Step(st, None)
    new = rewatch(check, st, now)
    new.resumed_at = now if asked_at is None else min(asked_at, now)
    runs = st.runs if only is None or not st.runs else {rid: run for rid, run in st.runs.items() if rid == only}
    new.runs = _under_way(check, runs, new.resumed_at) if runs else new.runs
    if st.step_due is not None and st.step_due > new.resumed_at:
        # A step its upstream armed before the pause is still due by then (dropped, one that never
        # ran was told nothing); one whose window passed while paused is not judged for it (a
        # standby's resume: before it was asked, as on one node).
        new.step_due, new.step_since = st.step_due, st.step_since
    new.failures, new.streak_ats = 0, ()
    new.status = Status.RUNNING if new.runs else Status.UP if new.last_ping_at is not None else Status.NEW
    new.changed_at = new.told_at = max(now, new.changed_at)
    new.folded = False  # (a state paused by an older version may still have it)
    return Step(new, flip_of(st, new, now, None, why))


def _under_way(check: CheckConfig, runs: dict[str, Run], now: float) -> dict[str, Run]:
    """The runs open at a resume (`now`: its instant, resumed_at), still watched after it: a pause
    stops their clocks, not the job. Dropped, a fan-in's batch under way was opened again by its
    workers after the resume, short of those before it, and told incomplete (a false alarm); a
    run's end closed nothing (no duration recorded) and a stall after the resume went untold.
    Their stall clocks, and a batch's time limit, count from the resume (deadlines.quiet_from and
    batches_from, from resumed_at), as its other deadlines do (not judged at once for the time it
    was paused); a run keeps its start and last sign of life, so its duration is true (a batch's
    too: moved to the resume, one that ran an hour was told too fast). One whose max_runtime passed
    while paused is dropped, as before (its end, if it comes, closes nothing)."""
    # A batch's own limit is judged from the resume (deadlines.batches_from): it is kept.
    return {
        rid: run
        for rid, run in runs.items()
        if check.expect is not None or check.max_runtime is None or run.started_at + check.max_runtime > now
    }


def rewatch(check: CheckConfig, st: CheckState, now: float) -> CheckState:
    """A check back in the config after an absence: its schedule restarts from now.

    Down and paused stay as they are (only a ping or an operator changes those); open runs and
    armed steps from before the absence are dropped so they cannot fire at once.
    """
    new = st.copy()
    if new.status not in (Status.DOWN, Status.PAUSED):
        new.status = Status.UP if new.last_ping_at is not None else Status.NEW
    new.watched_from = now
    new.runs.clear()
    new.step_due = new.step_since = None
    move_anchor(check, new, now, force=True)
    return new


def reconfigure(
    check: CheckConfig, st: CheckState, now: float, old: CheckConfig | None = None, *, complete: bool = True
) -> Step:
    """The check's config changed (from `old`; None: it may have): recompute its due time from the
    same anchor, unless `old` had the same schedule (a cron due time costs a croniter walk, and
    a reload can change 100k checks; the deadline also keeps its downtime extension).
    `complete` False: a check back in the config, whose open batches rewatch drops: none is
    completed by a lowered expect (its recovery and run would be thrown away, unsaid).

    A late check whose new due time lies ahead is on time again: a flip that alerts nobody. One
    that was not due yet is not made due for the time before the change.
    """
    due = next_due(check, st.anchor) if old is None or _schedule_of(old) != _schedule_of(check) else None
    rebased = False
    if due is not None and due.at != st.due_at and due.at < now < st.due_at:
        # The new schedule would have had a run due before this change that the old one did not
        # expect yet (every 1h made 30m, 40 min after a ping; a cron job moved from 03:00 to 02:00
        # at 02:30): its crontab changed with it, so it expects its first run after the change.
        # (Not one the old schedule expected during a downtime: the slack only waits for its ping.)
        due, rebased = next_due(check, now), True
    elif due is not None and due.at < st.due_at <= now:
        # Due already (in its grace, or waiting out a downtime's slack): the change does not make
        # that run due earlier still, which would tell it missed at once.
        due = Due(st.due_at, st.due_since)
    # The same due time keeps its downtime extension (the slack): a restart's load recomputes
    # every due time, and the next restart must not take back what the last one extended.
    moved = due is not None and (due.at != st.due_at or due.since != st.due_since)
    step_due = _step_due(check, st, now, old)
    runs = recounted(check, st.runs) if check.expect is not None and st.runs else None
    if (
        old is None
        and runs is None
        and due is not None
        and not moved
        and (check.after is not None or (st.step_due is None and st.step_since is None))
        and step_due == st.step_due
        and not (st.status is Status.LATE and st.due_at + st.slack > now)
        and not (st.folded and check.after is None)
        and not (complete and check.expect is not None and st.runs and _complete(check, st))
    ):
        # Nothing moves (every check at a restart, nearly): the state itself, not a copy to compare.
        # Only without `old`, at a load: a reload's state may hold a ping whose commit is in flight,
        # and a refused commit takes back only the state that ping made (engine._restore).
        return Step(st, None)
    new = st.copy()
    if runs is not None:
        new.runs = runs
    if due is not None and moved:
        set_due(check, new, due, now)
        # Its deadline (a late check's: the end of its grace) later, but still inside the downtime
        # the old one was extended for (no ping could reach the server then): extended as much, as
        # a restart after the same edit extends it. One past the downtime is not (nor made on time).
        if st.due_at <= due.at and due.at + (check.grace if new.status is Status.LATE else 0.0) < st.downtime_to:
            new.slack = st.slack
    if rebased:
        new.anchor = now  # the schedule counts from the change: a restart recomputes the same due time
    new.step_due = step_due
    if step_due is None:
        new.step_since = None
    if check.after is None:
        # No longer a step: its down was folded into an upstream's alert, but its reminders and
        # its recovery are its own now (no upstream alert stands for them): else it stays down, silent.
        new.folded = False
    ended: list[RunEnd] = []
    detail = "its due time moved ahead with a config reload"
    # Listed again, a member's success held in its batch counts again (recounted): expect may not have moved.
    relisted = runs is not None and any(run.successes > st.runs[rid].successes for rid, run in runs.items())
    if complete and check.expect is not None and new.runs and complete_batches(check, new, now, ended):
        counts = (
            "listed members whose successes it had"
            if check.members
            else "removed members, so every success it had counts"
        )
        why = counts if relisted else f"lowered expect to {check.expect}"
        detail = f"its batch is complete: a config change {why}"
    if new.status is Status.LATE and new.due_at + new.slack > now:  # not overdue any more
        on_time = Status.RUNNING if new.runs else Status.UP if new.last_ping_at is not None else Status.NEW
        set_status(new, on_time, None, now, now)
    if old is not None:
        _from_the_change(check, old, st, new, now)
    return Step(new, flip_of(st, new, now, None, detail), tuple(ended))


def _complete(check: CheckConfig, st: CheckState) -> bool:
    """Whether a batch under way has `expect` successes: a change lowered it (complete_batches)."""
    return any(run.successes >= (check.expect or 0) for run in st.runs.values())


def _from_the_change(check: CheckConfig, old: CheckConfig, st: CheckState, new: CheckState, now: float) -> None:
    """A limit the change shortened (grace, max_runtime, stall, a batch's) whose deadline now lies
    before the change, where the old config's next one did not: the check is taken down at the
    change, not as of a time the running config still waited for it (a flip and an alert dated
    before the reload). Through `not_before`, which moves only the deadlines before the change:
    the check's later ones (its next due time, another run's limit) stay where they are."""
    deadline = next_deadline(check, new)
    if deadline is None or deadline.at >= now or deadline.kind in (DeadlineKind.REMIND, DeadlineKind.END):
        return
    was = next_deadline(old, st)
    if was is not None and was.at < now:  # due under the old config too: fired as of its own instant
        return
    if deadline.at <= new.held_at < new.hold_until:  # held for a back-dated ping's window: held still
        new.held_at = now
    new.not_before = now


def _step_due(check: CheckConfig, st: CheckState, now: float, old: CheckConfig | None) -> float | None:
    """An armed step's deadline under the new config: counted from its upstream's event with the
    new `within` (the alert says "within" that), but not made due before the change when the old
    one was not; disarmed if it follows another check or event now (what armed it no longer does:
    at a reload, `old` says; at a restart, the state's step_after).
    A step armed by its upstream's recovery (arm_folded: no `step_since`) is due as it was."""
    if check.after is None or check.within is None:
        return None
    if st.step_due is None or st.step_since is None:
        return st.step_due
    if old is not None and (old.after, old.after_trigger) != (check.after, check.after_trigger):
        return None
    if st.step_after is not None and st.step_after != f"{check.after}.{check.after_trigger}":
        return None  # a restart after an edit of `after`: what armed it no longer does
    due = st.step_since + check.within
    return due if due >= st.step_due else max(due, min(st.step_due, now))


def _schedule_of(check: CheckConfig) -> tuple[object, ...]:
    """What `next_due` reads."""
    return check.every, check.cron, check.timezone, check.after


def account_downtime(
    check: CheckConfig, st: CheckState, stopped_at: float, started_at: float, settle_until: float = 0.0
) -> CheckState:
    """After a restart: a deadline inside the downtime moves back by the downtime's length, and
    one that then lies before `settle_until` moves to it (pings sent while nobody took them are
    still being retried into the restart).

    Deadlines before the stop are left alone, so `advance` fires them at once; reminders too (the
    check is down already).
    """
    return extend_by_downtime(st, next_deadline(check, st), stopped_at, started_at, settle_until)


def extend_by_downtime(
    st: CheckState, deadline: Deadline | None, stopped_at: float, started_at: float, settle_until: float = 0.0
) -> CheckState:
    """account_downtime, for a caller that has the state's next_deadline already (a restart
    schedules every check with it); the state itself when that deadline is not moved."""
    # A start that died before it had read every state leaves its downtime to the next, which
    # applies it to every state again (Loading.load): one extended by it already, not twice.
    stopped_at = max(stopped_at, st.downtime_to)
    # Nearly every check at a restart: a deadline past all of it, unmoved (settle_until, when
    # given, lies after started_at).
    if (
        deadline is None
        or deadline.kind is DeadlineKind.REMIND
        or not stopped_at <= deadline.at < (settle_until or started_at)
    ):
        return st
    slack = max(started_at - stopped_at if deadline.at < started_at else 0.0, settle_until - deadline.at)
    new = st.copy()
    new.slack += slack
    new.downtime_to = started_at
    return new
