"""The reorder window's rules: pings of one run that arrive out of event order, within
REORDER_WINDOW of each other, end as they would have in event order (docs/jobs.md, "Out of
order"). heartfly.core.states asks these when an event may be one that lost a race: a failure
overtaken by a newer success (or a success by a newer failure), an end dated before changes
recorded after it, a start that pairs with an end that came first, an end that takes over the run
a newer end closed. Pure."""

from __future__ import annotations

from heartfly.core.assertions import first_broken
from heartfly.core.config import CheckConfig
from heartfly.core.deadlines import BACKDATED
from heartfly.core.stateops import duration_assertions, failed, failure, judges_duration, set_status, timed, too_fast
from heartfly.core.statetypes import CheckState, Event, Flip, Reason, RunEnd, RunOutcome, Status, Step
from heartfly.core.units import human_duration

_NEW, _UP, _RUNNING = Status.NEW, Status.UP, Status.RUNNING  # module constants: see states' note
_COUNTED = (Reason.FAILED, Reason.TOO_FAST, Reason.ASSERTION)  # the verdicts failures_before_alert counts
_RUN_SUCCESS = RunOutcome.SUCCESS


def overtaken(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """A failure whose ping lost a race with a newer success's (both within the reorder window),
    on a check that success left up and that no change has been recorded for since the failure:
    in event order it was down, then up again, and both can be told without rewriting history."""
    return (
        st.last_end_at is not None
        and st.last_success_at == st.last_end_at  # the newest end is a success...
        and ev.at < st.last_end_at  # ...newer than this failure...
        and now - st.last_end_at <= window  # ...that came within the window (a live one)
        and st.status in (Status.UP, Status.RUNNING)
        and (st.changed_at <= ev.at or withdrawable(st, ev, window))
        # The success's verdict rested on its run's duration, which a failure inside that run shows
        # was another: its "up" is not told.
        and not (judges_duration(check) and st.paired_end is not None and st.paired_end[0] <= ev.at)
        and check.failures_before_alert == 1
        and check.expect is None  # a fan-in worker's failure closes its batch: not re-judged here
    )


def outrun(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """A success whose ping lost a race with a newer failure's (both within the reorder window), on
    a check down since before the success that the failure left down with nothing recorded since:
    in event order the success recovered it and the failure took it down again. Both are told,
    as overtaken tells a failure's, without rewriting history. Only where nothing else judges the
    success (its run's duration, its metrics, a fan-in's count, a streak, a pipeline step) and no
    run is open that it might not have closed."""
    last = st.last_end_at
    return (
        last is not None
        and ev.at < last <= ev.at + window  # the newest end, newer than this success...
        and (st.last_success_at is None or st.last_success_at < last)  # ...is a failure...
        and (st.prev_end_at is None or st.prev_end_at <= ev.at)  # ...the first end after it...
        and now - last <= window  # ...that came within the window (a live one)
        and st.status is Status.DOWN
        and st.told_at <= st.changed_at <= ev.at
        and ev.at >= st.resumed_at
        and not (st.folded or st.runs or st.waiting or st.window_hold or st.step_due)
        and check.failures_before_alert == 1
        and check.expect is None
        and check.min_runtime is None
        and not check.assertions
    )


def recover_then_fail(check: CheckConfig, st: CheckState, ev: Event, applied: Step, now: float) -> list[Step]:
    """Both changes an outrun success (see outrun) makes, each dated when it happened: up as of the
    success, then down as of the newer failure. `applied` is the success applied as history (its
    run recorded); the state ends as it left it, down from the failure."""
    fail_at = st.last_end_at
    assert fail_at is not None
    up = applied.state.copy()
    set_status(up, _UP, None, ev.at, now)
    up.failures, up.streak_ats, up.last_exit_status = 0, (), ev.exit_status  # its alert's: the success's
    up.last_end_at = ev.at  # ...and its run's duration, not the failure's (outbox.payload)
    words = f"it succeeded {human_duration(fail_at - ev.at)} before a newer failure (their pings arrived out of order)"
    came_back = Flip(ev.at, Status.DOWN, _UP, None, None, words, learned_at=now if now - ev.at > BACKDATED else None)
    down = up.copy()
    down.last_exit_status, down.last_end_at = st.last_exit_status, fail_at
    failure_words = failure(check, down, Reason.FAILED, fail_at, now, failed(st.last_exit_status))
    learned = now if now - fail_at > BACKDATED else None
    went_down = Flip(fail_at, _UP, Status.DOWN, Reason.FAILED, None, failure_words, learned_at=learned)
    return [Step(up, came_back, applied.ended), Step(down, went_down, ())]


def backdatable(check: CheckConfig, st: CheckState, at: float, now: float, window: float) -> bool:
    """Whether an end's down can be dated at its own time (`at`), before the changes recorded
    after it: they alerted nobody, happened within the window after it and were learned within
    the window."""
    return (
        st.status in (_UP, _RUNNING)
        and st.told_at <= at
        and st.changed_at - at <= window
        and now - st.changed_at <= window
        and check.expect is None
    )


def status_then(st: CheckState, at: float, ended: list[RunEnd]) -> Status:
    """The status a check up or running had at an end's time (`at`), for the changes after it that
    are withdrawn: running if one of its runs was open then (begun, and not ended before it: an
    older failure that completes a streak may have closed one), new if nothing had ended before,
    else up."""
    closed = {r.started_at for r in ended if r.ended_at < at}
    if any(run.started_at <= at and run.started_at not in closed for run in st.runs.values()):
        return _RUNNING
    if any(r.started_at <= at <= r.ended_at for r in ended):
        return _RUNNING
    return _NEW if st.last_end_at is None and st.last_success_at is None else _UP


def withdrawable(st: CheckState, ev: Event, window: float) -> bool:
    """Whether the changes recorded after a failure at `ev.at` can give way to the event order's:
    none told anybody anything, the first success after it came within the window of it, and no
    change came after the newest success but the starts of runs still open (the status that
    stands is the success's, or running from them: started_since). The newest success's own
    change counts too: where the first one's ping came after it, that one changed nothing (an
    older end), and in event order it was the first that brought the check up."""
    first = first_end_after(st, ev.at)
    assert st.last_end_at is not None
    return (
        st.told_at <= ev.at
        and first - ev.at <= window
        and (st.changed_at <= st.last_end_at or started_since(st, first) is not None)
    )


def first_end_after(st: CheckState, at: float) -> float:
    """The first end after a failure at `at` that a newer success overtook, as far as the state
    knows: the newest end, or the one before it if that came after the failure too. Both were
    successes: a failure among them would have told its down (told_at), with one failure enough."""
    assert st.last_end_at is not None
    return st.prev_end_at if st.prev_end_at is not None and st.prev_end_at > at else st.last_end_at


def started_since(st: CheckState, at: float) -> float | None:
    """When a check running only on runs started after `at` began running (its first start), else
    None."""
    if st.status is not _RUNNING or not st.runs:
        return None
    first = min(run.started_at for run in st.runs.values())
    return first if first > at else None


def in_streak(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """A failure older than the newest end, both within the reorder window, with no success since
    it: in event order it was one of the failures in a row that `failures_before_alert` counts
    (the newest end is a failure, or a success judged one), so it counts though its ping came
    second. Where a duration is judged too: a failure is one whatever its run's duration (a
    success between the two that comes later breaks the streak if its start came, or while the
    check is not down)."""
    last = st.last_end_at
    return (
        last is not None
        and _racing_the_newest(check, last, ev.at, now, window)
        and (st.last_success_at is None or st.last_success_at < ev.at)
        and st.told_at <= last  # nothing told since (a resume, say): the count it would complete is over
    )


def raced_into_streak(check: CheckConfig, st: CheckState, end_at: float, now: float, window: float) -> bool:
    """A success older than the newest end, a failure, that its start (arriving after both) shows
    was a failure too (too fast, or a `duration` assertion broke): in event order it was one of
    the failures in a row, and the newest one's count includes it. No success came between the two
    (the newest success is this one), and nothing was told since the newest end."""
    last = st.last_end_at
    return (
        last is not None
        and end_at < last
        and st.failures > 0  # the newest end is a failure the streak counts
        and _racing_the_newest(check, last, end_at, now, window)
        and (st.last_success_at is None or st.last_success_at <= end_at)
        and st.told_at <= last
    )


def late_failure(check: CheckConfig, st: CheckState, reason: Reason, at: float, now: float, detail: str) -> str:
    """After in_streak or raced_into_streak: the failure at `at` counts, as the newer one's count
    would have (dated by it)."""
    last = st.last_end_at
    assert last is not None
    detail += f", {human_duration(last - at)} before the last failure (their pings arrived out of order)"
    return failure(check, st, reason, last, now, detail, at)


def breaks_streak(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> bool:
    """A success older than the newest end, a failure, newer than any other success and all within
    the reorder window: in event order it ended the failures in a row before it, and only those
    after it counted (see streak_broken). Asked before the success is noted as history."""
    last = st.last_end_at
    kept = st.streak_ats
    return (
        last is not None
        and _racing_the_newest(check, last, ev.at, now, window)
        and (st.last_success_at is None or st.last_success_at < ev.at)  # the failures since it: one streak
        # The failure times kept are the newest: one older than them all cannot tell how many of
        # those before them came after it (a count that large stays down either way).
        and (len(kept) >= st.failures or (bool(kept) and kept[0] < ev.at))
    )


def _racing_the_newest(check: CheckConfig, last: float, at: float, now: float, window: float) -> bool:
    """An end (at `at`) within the window before the newest (at `last`), which came within the
    window, on a check the streak rules serve."""
    return last - at <= window and now - last <= window and check.expect is None


def streak_broken(check: CheckConfig, st: CheckState, ev: Event, now: float) -> str:
    """After breaks_streak: the failures after the success are the ones in a row, and a check
    their count does not take down is up again as of the newest end, if the count took it down
    (its detail says so)."""
    last = st.last_end_at
    assert last is not None
    st.streak_ats = tuple(at for at in st.streak_ats if at > ev.at)
    st.failures = len(st.streak_ats)
    if st.status is not Status.DOWN or st.failures >= check.failures_before_alert:
        return ""
    # Only a down the success would have ended (one before it) or the count made (after it): an
    # overrun or a stall between the two stands.
    made_by_count = st.changed_at > ev.at and st.reason in _COUNTED
    if not (st.changed_at <= ev.at or made_by_count):
        return ""
    set_status(st, _RUNNING if st.runs else _UP, None, last, now)
    ago = human_duration(last - ev.at)
    count = "1 failure" if st.failures == 1 else f"{st.failures} failures"
    return f"it succeeded {ago} before its last failure (their pings arrived out of order): {count} in a row"


def pair_raced(
    check: CheckConfig,
    st: CheckState,
    ev: Event,
    orphan: tuple[float, float, RunOutcome, int | None, str | None],
    now: float,
    window: float,
    ended: list[RunEnd],
) -> str:
    """A start that raced its own end and lost: the run is recorded and judged as if they had come
    in order. Only what needs the duration can change the end's verdict: min_runtime and the
    `duration` assertions (the others were judged on the end's metrics when it came)."""
    end_at, _, outcome, exit_status, _ = orphan
    # An end stamped before its own start (a run id's, from another clock): no duration to judge.
    duration = end_at - ev.at if end_at >= ev.at else None
    if orphan is st.orphan_prev:
        st.orphan_prev = None
    elif orphan in st.orphan_older:
        st.orphan_older = tuple(o for o in st.orphan_older if o is not orphan)
    else:
        st.orphan_end = None
    timed(st, duration, end_at)
    detail = ""
    reason: Reason | None = None
    if outcome is RunOutcome.SUCCESS and duration is not None:
        if check.min_runtime is not None and duration < check.min_runtime:
            reason, detail = Reason.TOO_FAST, too_fast(duration, check.min_runtime)
        elif broken := first_broken(duration_assertions(check), None, duration):
            reason, detail = Reason.ASSERTION, broken
    if reason is not None:
        outcome = RunOutcome(reason.value)
        if st.last_end_at == end_at:  # still the newest end: its verdict is the check's
            detail = failure(check, st, reason, end_at, now, detail)
        elif raced_into_streak(check, st, end_at, now, window):
            detail = late_failure(check, st, reason, end_at, now, detail)
    ended.append(RunEnd(ev.run_id, ev.at, max(end_at, ev.at), outcome, exit_status, detail))
    # A start between this one and the end may still come: its own verdicts are all known here,
    # but for an end whose metrics broke an assertion (its words are not kept): no pairing again.
    if ev.run_id is None and duration is not None and orphan[2] in (_RUN_SUCCESS, RunOutcome.FAIL):
        st.paired_end = (ev.at, end_at, orphan[1], outcome, exit_status, "")
    return detail


def pairs_again(
    check: CheckConfig,
    paired: tuple[float, float, float, RunOutcome, int | None, str] | None,
    ev: Event,
    now: float,
    window: float,
) -> bool:
    """Whether a start without run id falls between the newest end and the older start it closed,
    all within the reorder window (see CheckState.paired_end)."""
    return (
        paired is not None
        and paired[0] < ev.at <= paired[1] <= ev.at + window
        and now - paired[2] <= window
        and check.expect is None
    )


def pair_again(
    check: CheckConfig,
    st: CheckState,
    ev: Event,
    paired: tuple[float, float, float, RunOutcome, int | None, str],
    now: float,
    window: float,
    ended: list[RunEnd],
) -> str:
    """A start without run id that arrived after the end that closed an older run, all within the
    reorder window: in event order it superseded that run and the end closed it. The run's row is
    replaced and judged on its own duration (min_runtime, the `duration` assertions), but the
    check's status is not, either way: an end between the two that is still on its way would show
    the first pairing right after all (tests/test_event_time.py shows both), and a change told
    cannot be taken back. Nothing pairs again after it."""
    older, end_at, _, outcome, exit_status, metric_broken = paired
    duration = end_at - ev.at
    st.superseded = ((older, now + window), *st.superseded[:3])
    st.paired_end = None
    if st.last_duration_at == end_at:
        st.last_duration = duration
    if outcome is RunOutcome.FAIL:
        detail = failed(exit_status)
        new: RunOutcome = outcome
    else:
        reason: Reason | None = None
        detail = ""
        if check.min_runtime is not None and duration < check.min_runtime:
            reason, detail = Reason.TOO_FAST, too_fast(duration, check.min_runtime)
        elif broken := first_broken(duration_assertions(check), None, duration):
            reason, detail = Reason.ASSERTION, broken
        elif metric_broken:
            reason, detail = Reason.ASSERTION, metric_broken
        new = RunOutcome(reason.value) if reason is not None else _RUN_SUCCESS
    ended.append(RunEnd(None, ev.at, end_at, new, exit_status, detail, replaces=(older, end_at)))
    return ""


def taken_over(check: CheckConfig, st: CheckState, ev: Event, now: float, window: float) -> tuple[float, float] | None:
    """An end without run id that closed no run but falls inside the run the newest end closed,
    all within the reorder window: in event order it closed that run, and the newer end closed
    none. Returns the (start, end) of the row it takes over, None if it takes none. Where a
    duration is judged, only from a failure: a success's verdict, told already, rested on that
    run's duration."""
    paired = st.paired_end
    if paired is None or ev.run_id is not None or check.expect is not None:
        return None
    started, end_at, arrived, outcome, exit_status, _ = paired
    if judges_duration(check) and outcome is not RunOutcome.FAIL:
        return None
    if not (started <= ev.at < end_at <= ev.at + window and now - arrived <= window):
        return None
    if outcome is not _RUN_SUCCESS and outcome is not RunOutcome.FAIL:
        return None  # judged on its duration, which it now lacks: the verdict stands, and the pairing
    st.paired_end = None
    st.orphan_end = (end_at, arrived, outcome, exit_status, None)
    return started, end_at


def broken_by_metrics(check: CheckConfig, ev: Event) -> str:
    """The first assertion an end's own metrics broke ("" for none): what a later pairing of its
    run, with another duration, cannot change."""
    return first_broken(tuple(a for a in check.assertions if a.name != "duration"), ev.metrics, None) or ""
