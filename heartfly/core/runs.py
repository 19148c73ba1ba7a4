"""Which run an event belongs to: open runs, runs closed by an end, starts an end overtook or a
newer start superseded. Bookkeeping on a CheckState, no verdicts (those are bykind.py's)."""

from __future__ import annotations

from heartfly.core.checkconfig import CheckConfig
from heartfly.core.statetypes import Activity, CheckState, Event, RunOutcome

MAX_OPEN_RUNS = 64  # a job that only ever starts must not grow its state without bound
MAX_CLOSED_RUNS = 32  # fan-in run ids remembered as finished, so stragglers cannot reopen them
MAX_EARLY_ACTIVITY = 8  # spans of signs of life kept for a start still on its way (CheckState.early_activity)
IMPLICIT_RUN = ""  # the run id of a start that carried none


def activity(check: CheckConfig, st: CheckState, ev: Event, now: float) -> None:
    """A progress or log ping pushes back the stall clock of its run (of every open run without
    rid). One that finds no open run is kept for a start still on its way (CheckState.early_activity)."""
    rids = [ev.run_id] if ev.run_id is not None else list(st.runs)
    found = False
    for rid in rids:
        run = st.runs.get(rid)
        if run is not None:
            found = True
            if ev.at > run.active_at:
                st.runs[rid] = run._replace(active_at=ev.at)
    if not found and check.stall is not None:
        st.early_activity = _joined(st.early_activity, ev, now, check.stall)


def _joined(spans: tuple[Activity, ...], ev: Event, now: float, stall: float) -> tuple[Activity, ...]:
    """The spans of early signs of life with one more: it joins every span of its run id that it
    falls within the stall limit of (no stall happened between them), oldest spans dropped first."""
    first, last, arrived = ev.at, ev.at, now
    kept: list[Activity] = []
    for span in spans:
        if span[3] == ev.run_id and span[0] - stall < ev.at < span[1] + stall:
            first, last, arrived = min(first, span[0]), max(last, span[1]), max(arrived, span[2])
        else:
            kept.append(span)
    kept.append((first, last, arrived, ev.run_id))
    return tuple(sorted(kept, key=lambda span: span[:3]))[-MAX_EARLY_ACTIVITY:]  # not by run id: None or text


def active_since(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> float:
    """Where the stall clock of a run a start opens stands: at the start, or at the last of the
    signs of life of its run that came first (within the reorder window, CheckState.early_activity)
    before a gap as long as the stall limit (in event order the run stalled there)."""
    active = ev.at
    if st.early_activity and check.stall is not None:
        for first, last, arrived, rid in st.early_activity:  # oldest first
            if rid == ev.run_id and last > active and now - arrived <= window:
                if first - active >= check.stall:
                    break
                active = last
    return active


def note_orphan(
    st: CheckState, ev: Event, now: float, started: float | None, outcome: RunOutcome, window: float
) -> None:
    """Remember the newest end that closed no run (see CheckState.orphan_end), and, without run
    ids, the older ones that closed none either (CheckState.orphan_prev, orphan_older), while a
    start may still use them: `window` from their arrival, the widest reorder window a later
    event may apply."""
    newest = st.last_end_at is None or ev.at >= st.last_end_at
    if started is not None:
        if newest:
            last = st.orphan_end
            if last is not None and last[4] is None and last[0] < started and now - last[1] <= window:
                # It ended before the run this end closed began: a start older than it, still on
                # its way, pairs with it as in event order (the first end after that start).
                _keep_older(st, st.orphan_prev, now, window)
                st.orphan_end, st.orphan_prev = None, last
            else:
                st.orphan_end = st.orphan_prev = None
                st.orphan_older = ()
        return
    orphan = (ev.at, now, outcome, ev.exit_status, ev.run_id)
    if ev.run_id is not None:
        if newest:
            st.orphan_end, st.orphan_prev, st.orphan_older = orphan, None, ()
        return
    if newest:  # the older orphans stay behind it, for a start older than them (orphan_prev)
        last = st.orphan_end
        # One whose window is over would be dropped by the next event before anything reads it:
        # not kept till then (a check pinged without starts holds it between every two pings).
        if st.last_start_at is not None:  # a check that sends no starts (most) has no run to pair
            _keep_older(st, st.orphan_prev, now, window)
        st.orphan_prev = last if last is not None and last[4] is None and now - last[1] <= window else None
        st.orphan_end = orphan
    elif st.orphan_prev is None or ev.at > st.orphan_prev[0]:  # the newest closed a run, or none either
        _keep_older(st, st.orphan_prev, now, window)
        st.orphan_prev = orphan
    else:
        _keep_older(st, orphan, now, window)


def _keep_older(
    st: CheckState, orphan: tuple[float, float, RunOutcome, int | None, str | None] | None, now: float, window: float
) -> None:
    """An orphan end older than the one orphan_prev keeps, among the two oldest kept (a start
    older than both belongs to the older: the first end after it)."""
    kept = tuple(o for o in st.orphan_older if now - o[1] <= window)
    if orphan is not None and orphan[4] is None and now - orphan[1] <= window:
        kept = tuple(sorted((*kept, orphan), key=lambda o: o[0]))[:2]
    st.orphan_older = kept


def close_fan_in(st: CheckState, rid: str, *, failed: bool = False) -> None:
    """A fan-in batch is over: its stragglers count nothing. `failed`: by a worker's failure or a
    broken assertion, or given up; a worker's failure in it counts no second failure."""
    if rid == IMPLICIT_RUN:
        return
    if rid not in st.closed_runs:
        closed = (*st.closed_runs, rid)
        st.closed_runs = closed[-MAX_CLOSED_RUNS:]
        if st.failed_runs and (forgotten := closed[:-MAX_CLOSED_RUNS]):
            # Forgotten as over, forgotten as failed (a batch that completed and then failed late
            # is not the oldest failed): a batch sent under its id again is a new one, failure and all.
            st.failed_runs = tuple(r for r in st.failed_runs if r not in forgotten)
    if failed and rid not in st.failed_runs:
        st.failed_runs = (*st.failed_runs, rid)  # a subset of closed_runs: bounded as it is


def close_run(st: CheckState, run_id: str | None, at: float, now: float) -> float | None:
    """The start of the run an end at `at` closes: its run id's, else the latest one that started
    at or before it; None for no such run (without a run id, an end never closes a run that began
    after it). A run id pairs whatever the times say: an end stamped before its own run's start
    comes from a clock apart from the one that stamped the start (a spooled end from a client
    whose clock lags the server's), so the run is over but its duration is unknown."""
    if run_id is not None:
        run = st.runs.pop(run_id, None)
        return None if run is None else run.started_at
    if not st.runs:  # nearly every ping of a job that sends no start
        return close_superseded(st, at, now) if st.superseded else None
    began = [rid for rid, run in st.runs.items() if run.started_at <= at]
    if not began:
        return close_superseded(st, at, now)
    latest = max(began, key=lambda rid: st.runs[rid].started_at)
    return st.runs.pop(latest).started_at


def close_superseded(st: CheckState, at: float, now: float) -> float | None:
    """The start of a run a newer start replaced that an end at `at`, arriving within the reorder
    window, closes (see CheckState.superseded); None for none."""
    if not st.superseded:
        return None
    live = tuple((started, until) for started, until in st.superseded if until >= now)
    match = max((started for started, _ in live if started <= at), default=None)  # the latest before it
    if match is not None and st.last_end_at is not None and at >= st.last_end_at and (st.last_start_at or 0) <= match:
        # A start older than the newest end that no newer start superseded: its run was over at
        # that end (the first end after it closed it, whatever ended it), so an end newer than
        # that one (the next run's, its start not come) never closed it.
        st.superseded = live
        return None
    st.superseded = tuple(s for s in live if s[0] != match)
    return match
