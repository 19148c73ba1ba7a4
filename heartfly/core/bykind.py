"""How one event changes a check's state, by its kind: a start opens a run, a success or a
failure closes one and is judged (a fan-in counts its workers first), a progress or log ping is a
sign of life for the stall clock. In place, as of the event's own time; what arrives late or out
of order is the caller's (heartfly.core.states) and heartfly.core.reorder's. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from heartfly.core.anchors import move_anchor
from heartfly.core.assertions import first_broken
from heartfly.core.config import CheckConfig
from heartfly.core.reorder import (
    breaks_streak,
    broken_by_metrics,
    in_streak,
    late_failure,
    pair_again,
    pair_raced,
    pairs_again,
    streak_broken,
    taken_over,
)
from heartfly.core.runs import (
    IMPLICIT_RUN,
    MAX_OPEN_RUNS,
    active_since,
    activity,
    close_fan_in,
    close_run,
    note_orphan,
)
from heartfly.core.stateops import failed, failure, judges_duration, set_status, timed, too_fast
from heartfly.core.statetypes import CheckState, Event, Kind, Reason, Run, RunEnd, RunOutcome, Status, own_runs

_UP, _RUNNING, _DOWN, _PAUSED = Status.UP, Status.RUNNING, Status.DOWN, Status.PAUSED
_START, _SUCCESS, _FAIL = Kind.START, Kind.SUCCESS, Kind.FAIL
_RUN_SUCCESS = RunOutcome.SUCCESS

REORDER_WINDOW = 5.0  # a deadline a back-dated event made due waits this long for the events behind it


def by_kind(check: CheckConfig, st: CheckState, ev: Event, ended: list[RunEnd], now: float, window: float) -> str:
    """Apply an event to `st` in place by its kind; its detail."""
    kind = ev.kind
    if kind is _START:
        return _start(check, st, ev, now, ended, window)
    if kind is _SUCCESS:
        return _success(check, st, ev, ended, now, window)
    if kind is _FAIL:
        return _fail(check, st, ev, ended, now, window)
    activity(check, st, ev, now)  # progress and log pings are signs of life for the stall clock
    return ""


def _start(check: CheckConfig, st: CheckState, ev: Event, now: float, ended: list[RunEnd], window: float) -> str:
    """Open a run (its detail: "" but for a start that completes a raced run, below)."""
    rid = ev.run_id or IMPLICIT_RUN
    open_run = st.runs.get(rid)
    if check.expect is not None and (open_run is not None or rid in st.closed_runs):
        # A fan-in worker starting within its batch: the batch keeps its count and its clock.
        if open_run is not None and ev.at > open_run.active_at:
            st.runs[rid] = open_run._replace(active_at=ev.at)
        return ""
    orphan = st.orphan_end if st.orphan_end is not None and st.orphan_end[4] == ev.run_id else None
    if ev.run_id is None and (st.orphan_prev is not None or st.orphan_older):
        # The first of the older ends that closed nothing after it: the one that closes it in event order.
        ends = (*st.orphan_older, st.orphan_prev) if st.orphan_prev is not None else st.orphan_older
        orphan = next((o for o in ends if ev.at <= o[0] and now - o[1] <= window), orphan)
    raced = orphan is not None and now - orphan[1] <= window
    # Its own end came first and closed nothing: within the reorder window they raced (with a run
    # id whatever the times say, as _close_run pairs them); an older start is history after it.
    ended_first = orphan is not None and (ev.at <= orphan[0] or (raced and ev.run_id is not None))
    if ended_first or (rid == IMPLICIT_RUN and st.last_end_at is not None and ev.at < st.last_end_at):
        # Its run is over. Opening it now would leave a run that never ends, and an overrun that
        # never happened.
        st.last_start_at = max(st.last_start_at or ev.at, ev.at)
        if orphan is None or not (ended_first and raced):
            if rid == IMPLICIT_RUN and pairs_again(check, st.paired_end, ev, now, window):
                assert st.paired_end is not None
                return pair_again(check, st, ev, st.paired_end, now, window, ended)
            if rid == IMPLICIT_RUN and check.expect is None:
                # An end after it may still be on its way (or a success after it waits): in event
                # order it closed this run, as it will if it comes within the window
                # (runs.close_superseded).
                st.superseded = ((ev.at, now + window), *st.superseded[:3])
            return ""
        return pair_raced(check, st, ev, orphan, now, window, ended)
    if open_run is not None and rid == IMPLICIT_RUN:  # the older of two open starts is superseded
        older = min(open_run.started_at, ev.at)
        st.superseded = ((older, now + window), *st.superseded[:3])
    if open_run is not None and open_run.started_at > ev.at:
        return ""  # a newer start of the same run already replaced it (they raced): it stays
    own_runs(st)[rid] = Run(ev.at, active_since(check, st, ev, now, window))
    while len(st.runs) > MAX_OPEN_RUNS:
        del st.runs[min(st.runs, key=lambda rid: st.runs[rid].started_at)]
    st.last_start_at = max(st.last_start_at or ev.at, ev.at)
    # A start anchors a cron schedule; an `every` schedule only when max_runtime guards the end.
    if check.cron is not None or check.max_runtime is not None:
        move_anchor(check, st, ev.at)
    if st.status in (Status.NEW, Status.UP, Status.LATE):
        set_status(st, Status.RUNNING, None, ev.at, now)
    return ""


def _success(check: CheckConfig, st: CheckState, ev: Event, ended: list[RunEnd], now: float, window: float) -> str:
    counted = None
    if check.expect is not None:
        counted = _fan_in(check, st, ev, now)
        if counted is None:
            return ""  # counted; the run is not complete yet
    return _succeeded(check, st, ev, ended, now, window, counted)


def complete_batches(check: CheckConfig, st: CheckState, now: float, ended: list[RunEnd]) -> bool:
    """A reload lowered `expect` under batches that have as many successes already: each is
    complete, as its last counted success would have made it (judged on its duration, each
    worker's metrics were judged as it came), else it would wait for a success more and be told
    incomplete ("3 of 3 successes arrived"). In place; whether one was."""
    assert check.expect is not None
    done = sorted((run.started_at, rid) for rid, run in st.runs.items() if run.successes >= check.expect)
    for _, rid in done:
        run = st.runs.pop(rid)
        close_fan_in(st, rid)
        ev = Event(_SUCCESS, run.active_at, None if rid == IMPLICIT_RUN else rid)
        _succeeded(check, st, ev, ended, now, REORDER_WINDOW, (run, ""))
    return bool(done)


def recounted(check: CheckConfig, runs: Mapping[str, Run]) -> dict[str, Run] | None:
    """The batches under way as a config listing `members` counts them, if that differs from
    what they have (a reload or restart that listed members, dropped one or listed one again,
    under a batch counted otherwise): only a listed member's success counts, as _fan_in counts a
    new one; those counted before from a worker naming none are its `unnamed`. Else
    complete_batches would complete a batch a listed member never reported to, or its next
    success would; and a member listed again, whose success its batch holds (a second one counts
    not), would leave it a success short for good. With no `members` any more, every success it
    holds counts again (those of members a list left out, and those naming none). None: none
    changes."""
    changed = None
    for rid, run in runs.items():
        if not check.members:  # none listed now: every success it holds counts, named or not
            every = max(run.successes, len(run.members)) + run.unnamed
            if every != run.successes:
                changed = changed if changed is not None else dict(runs)
                changed[rid] = run._replace(successes=every, unnamed=0)
            continue
        listed = sum(m in check.members for m in run.members)
        if listed != run.successes:
            changed = changed if changed is not None else dict(runs)
            unnamed = run.unnamed + max(run.successes - len(run.members), 0)
            changed[rid] = run._replace(successes=listed, unnamed=unnamed)
    return changed


def _succeeded(
    check: CheckConfig,
    st: CheckState,
    ev: Event,
    ended: list[RunEnd],
    now: float,
    window: float,
    counted: tuple[Run | None, str] | None,
) -> str:
    """A success judged: a run it closes (`counted`: a fan-in batch it completed, or its first
    worker's broken assertion, see _fan_in) and its duration, and the state it leaves."""
    taken: tuple[float, float] | None = None
    worker_broke = ""  # a fan-in worker's success that broke an assertion on its own metrics
    if counted is not None:
        run, worker_broke = counted
        started: float | None = None if run is None else run.started_at
        if run is not None and not worker_broke:
            st.last_members = run.members
        members = () if run is None else run.members
    else:
        started = close_run(st, ev.run_id, ev.at, now)
        taken = taken_over(check, st, ev, now, window) if started is None else None
        if taken is not None:
            started = taken[0]
        members = ()
    duration = None if started is None or started > ev.at else ev.at - started  # None: see _close_run
    timed(st, duration, ev.at, None if taken is None else taken[1])
    newest = st.last_end_at is None or ev.at >= st.last_end_at  # else an older end: history
    if newest:
        st.last_exit_status = ev.exit_status
    move_anchor(check, st, ev.at)
    broken = ""
    reason: Reason | None = None
    if worker_broke:  # its batch is over, failed: not judged on the duration it had so far
        reason, broken = Reason.ASSERTION, worker_broke
    elif check.min_runtime is not None and duration is not None and duration < check.min_runtime:
        reason = Reason.TOO_FAST
        broken = too_fast(duration, check.min_runtime)
    else:
        # A batch's workers' metrics were judged as each came (_fan_in): its duration is left.
        asserted = check.assertions if counted is None else tuple(a for a in check.assertions if a.name == "duration")
        broken = first_broken(asserted, ev.metrics, duration) or ""
        reason = Reason.ASSERTION if broken else None
    outcome = RunOutcome(reason.value) if reason else _RUN_SUCCESS
    if started is not None:
        ended.append(RunEnd(ev.run_id, started, max(ev.at, started), outcome, ev.exit_status, broken, members, taken))
    note_orphan(st, ev, now, started, outcome, kept(window))
    if newest:
        if started is None or ev.run_id is not None or check.expect is not None:
            st.paired_end = None
        else:
            own = broken_by_metrics(check, ev) if reason is Reason.ASSERTION else ""
            st.paired_end = (started, ev.at, now, outcome, ev.exit_status, own)
    # A success older than the newest end that breaks a failure streak, unless its verdict may yet
    # change (a start still on its way could show it too fast) while the check is down: a recovery
    # told would be wrong then. Not down, nothing told rests on the count, and a count too high
    # would tell a down later that event order never reached.
    streak = reason is None and not newest and not (started is None and judges_duration(check) and st.status is _DOWN)
    streak = streak and breaks_streak(check, st, ev, now, window)  # before _stale notes it
    if reason is None:
        st.last_success_at = max(st.last_success_at or ev.at, ev.at)
    if _stale(st, ev, now):
        if streak:  # its ping lost a race with a newer failure's: the failures before it do not count
            return streak_broken(check, st, ev, now)
        if reason is not None and in_streak(check, st, ev, now, window):  # a failing verdict, as a late failure
            return late_failure(check, st, reason, ev.at, now, broken)
        return broken  # an end older than the newest one (a spooled ping) is history, not news
    if reason is not None:
        return failure(check, st, reason, ev.at, now, broken)
    st.failures, st.streak_ats = 0, ()
    st.step_due = st.step_since = None  # a pipeline step that succeeds has done its part
    if st.status is not _PAUSED:
        set_status(st, _RUNNING if st.runs else _UP, None, ev.at, now)
    return ""


def _fan_in(check: CheckConfig, st: CheckState, ev: Event, now: float) -> tuple[Run | None, str] | None:
    """Count one worker's success; the completed run once `expect` have arrived, else None.

    A member reporting twice counts once (a retried worker must not complete a run alone), and
    with `members` listed, a name not among them, or none, counts not at all (a stray, misnamed or
    unnamed worker must not complete a batch that a listed member never reported to).

    A counted success that breaks an assertion on its own metrics ends its batch, failed, as a
    worker's failure does (else the verdict would rest on whichever worker came last): the run
    as it was (the workers that succeeded before it; None if it is the batch's first ping, which
    like a first worker's failure times no run), and the broken assertion's words.
    """
    assert check.expect is not None
    rid = ev.run_id or IMPLICIT_RUN
    if rid in st.closed_runs:
        return None  # a straggler of a batch already complete, given up or failed: recorded, not counted
    opened = st.runs.get(rid)
    run = opened or Run(ev.at, ev.at)
    if check.members and ev.member not in check.members:  # one naming no member too: it may be any of them
        if ev.member is None:  # a worker of the batch all the same: noted, for its incomplete alert
            own_runs(st)[rid] = run._replace(unnamed=run.unnamed + 1, active_at=max(run.active_at, ev.at))
            if st.status in (Status.NEW, Status.UP, Status.LATE):
                set_status(st, Status.RUNNING, None, ev.at, now)
        return None
    if ev.member is not None and ev.member in run.members:
        return None
    broken = first_broken(check.assertions, ev.metrics, None) or ""  # None: the batch's duration is judged at its end
    if broken:
        broken += by_worker(ev)
        st.runs.pop(rid, None)
        close_fan_in(st, rid, failed=True)
        return opened, broken
    members = run.members + ((ev.member,) if ev.member is not None else ())
    run = run._replace(successes=run.successes + 1, members=members, active_at=max(run.active_at, ev.at))
    if run.successes < check.expect:
        own_runs(st)[rid] = run
        if st.status in (Status.NEW, Status.UP, Status.LATE):
            set_status(st, Status.RUNNING, None, ev.at, now)
        return None
    st.runs.pop(rid, None)
    close_fan_in(st, rid)
    return run, ""


def _fail(check: CheckConfig, st: CheckState, ev: Event, ended: list[RunEnd], now: float, window: float) -> str:
    batches = None
    if check.expect is not None:
        if ev.run_id is not None and ev.run_id in st.failed_runs:
            # A worker of a batch that failed or was given up: recorded, not counted. A batch fails
            # once, however many workers say so. (One after its batch completed is a failure.)
            return ""
        if ev.run_id is not None:
            close_fan_in(st, ev.run_id, failed=True)  # a worker failed: its batch is over, whoever else reports
        batches = dict(st.runs)
    started = close_run(st, ev.run_id, ev.at, now)
    # The batch it ended (with a run id or without) is recorded with who had succeeded in it.
    members = next((run.members for rid, run in (batches or {}).items() if rid not in st.runs), ())
    taken = taken_over(check, st, ev, now, window) if started is None else None
    if taken is not None:
        started = taken[0]
    duration = None if started is None or started > ev.at else ev.at - started
    timed(st, duration, ev.at, None if taken is None else taken[1])
    newest = st.last_end_at is None or ev.at >= st.last_end_at  # else an older end: history
    if newest:
        st.last_exit_status = ev.exit_status
    move_anchor(check, st, ev.at)
    detail = failed(ev.exit_status) + (by_worker(ev) if check.expect is not None else "")
    if started is not None:
        ended.append(
            RunEnd(ev.run_id, started, max(ev.at, started), RunOutcome.FAIL, ev.exit_status, detail, members, taken)
        )
    note_orphan(st, ev, now, started, RunOutcome.FAIL, kept(window))
    if newest:
        if started is None or ev.run_id is not None or check.expect is not None:
            st.paired_end = None
        else:
            st.paired_end = (started, ev.at, now, RunOutcome.FAIL, ev.exit_status, "")
    if _stale(st, ev, now):
        if in_streak(check, st, ev, now, window):  # its ping lost a race with the newer failure's
            return late_failure(check, st, Reason.FAILED, ev.at, now, detail)
        return detail
    return failure(check, st, Reason.FAILED, ev.at, now, detail)


def by_worker(ev: Event) -> str:
    """A fan-in worker's failure names the worker its ping named: which of the batch's to look at."""
    return "" if ev.member is None else f" (worker {ev.member})"


def kept(window: float) -> float:
    """How long what only an event within the reorder window can use is kept: the widest window a
    later event may apply (a batch applies its own pings with none, the live pings after it with
    REORDER_WINDOW), so that nothing a later event could use goes early."""
    return max(window, REORDER_WINDOW)


def _stale(st: CheckState, ev: Event, now: float) -> bool:
    """Whether an end is older than the newest end seen; either way the newest end is remembered.

    A stale end changes no verdict, but the run it closed is over: a check left running with no
    open run is up again.
    """
    if st.last_end_at is not None and ev.at < st.last_end_at:
        if st.prev_end_at is None or ev.at > st.prev_end_at:
            st.prev_end_at = ev.at
        if st.status is _RUNNING and not st.runs:
            set_status(st, _UP, None, ev.at, now)
        return True
    st.prev_end_at, st.last_end_at = st.last_end_at, ev.at
    return False
