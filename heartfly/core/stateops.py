"""The state machine's small operations, shared by its rules (heartfly.core.states) and by the
reorder window's (heartfly.core.reorder): set a status, count a failed run, time a run, word a
run that failed or was too fast, and tell which of a check's rules judge a run's duration. Pure."""

from __future__ import annotations

from heartfly.core.assertions import Assertion
from heartfly.core.config import CheckConfig
from heartfly.core.statetypes import CheckState, Reason, Status
from heartfly.core.units import human_duration, human_duration_against

_DOWN, _PAUSED = Status.DOWN, Status.PAUSED  # module constants: see states' note on enum lookups


def set_status(st: CheckState, status: Status, reason: Reason | None, at: float, now: float) -> None:
    """A status as of `at` (never before the last change: history stays in order), learned `now`."""
    if st.status is not status:
        st.changed_at = max(at, st.changed_at)
        st.alerted_at = now if status is _DOWN else None  # reminders count from the alert
        if status is _DOWN or st.status is _DOWN or status is _PAUSED or st.status is _PAUSED:
            st.told_at = st.changed_at
        if status is not _DOWN:
            st.folded = False
    elif status is _DOWN:
        return  # still down: the reason its alert gave stands (a new one would be a change unrecorded)
    st.status, st.reason = status, reason


STREAK_KEPT = 16  # failure times a state keeps: a late success recounts exactly with failures_before_alert <= 16


def failure(
    check: CheckConfig,
    st: CheckState,
    reason: Reason,
    at: float,
    now: float,
    detail: str,
    event_at: float | None = None,
) -> str:
    """A failed run: down once `failures_before_alert` have come in a row (any success resets).
    `at` dates the change; `event_at`, the failure's own time, if another (a failure that came late)."""
    if st.status is _PAUSED:  # nobody watches a paused check: its failures start no streak for the resume
        return detail
    happened = at if event_at is None else event_at
    if happened < st.resumed_at:  # sent while paused: counted as then
        if st.status is not Status.DOWN:  # the run it ended is over (a down stays: this is no success)
            set_status(st, Status.RUNNING if st.runs else Status.UP, None, at, now)
        return detail
    st.failures += 1
    st.streak_ats = tuple(sorted((*st.streak_ats, happened)))[-STREAK_KEPT:]
    if st.status is Status.DOWN and st.folded and st.failures >= check.failures_before_alert:
        # Its down was folded into an upstream's alert (a missed step): its own failure is news,
        # told as its down now (deadlines.flip_of), unless that alert folds it again.
        st.folded, st.reason, st.alerted_at = False, reason, now
        st.told_at = max(at, st.told_at, st.changed_at)  # its status has not changed: changed_at (down_for) stands
    if st.failures >= check.failures_before_alert or st.status is Status.DOWN:
        set_status(st, Status.DOWN, reason, at, now)
        if check.failures_before_alert > 1:
            detail += f" ({st.failures} failures in a row)"
    else:
        set_status(st, Status.RUNNING if st.runs else Status.UP, None, at, now)
    return detail


def timed(st: CheckState, duration: float | None, end_at: float, took_from: float | None = None) -> None:
    """A finished run's duration, with the time of the end that timed it. An end that times no
    run (no start, or stamped before it) keeps the last one: the status and the metric do not go
    blank, and its alert, by that time, does not pass it off as its own (outbox.payload).
    `took_from`: the newer end whose run this end took over (reorder.taken_over)."""
    if duration is None:
        return
    # An older run recorded late (its start raced its end) leaves the newest run's standing; but
    # one taken over from the end that timed it is no run of that end's: its duration goes too.
    if st.last_duration_at is None or end_at >= st.last_duration_at or took_from == st.last_duration_at:
        st.last_duration, st.last_duration_at = duration, end_at


def failed(exit_status: int | None) -> str:
    """A failure's words, as its alert and its run's row give them."""
    return "failed" if exit_status is None else f"failed with exit status {exit_status}"


def too_fast(duration: float, limit: float) -> str:
    return f"finished after {human_duration_against(duration, limit)}, sooner than min_runtime {human_duration(limit)}"


def judges_duration(check: CheckConfig) -> bool:
    """Whether a run's duration can change an end's verdict (min_runtime, `duration` assertions)."""
    return check.min_runtime is not None or bool(duration_assertions(check))


def duration_assertions(check: CheckConfig) -> tuple[Assertion, ...]:
    """The assertions on a run's duration: what a pairing with another start can change."""
    return tuple(a for a in check.assertions if a.name == "duration")
